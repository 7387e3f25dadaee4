"""History records and the runs they point at, kept in step.

A training record is written when its job is submitted; its result summary is
filled in from the run once the run has completed (pulled when listed, so no
worker has to know about history). Deleting a training record deletes its run.
"""

from __future__ import annotations

import json

import numpy as np

from reflect_core.store import history
from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.store.bundles import directory_size
from reflect_core.viz.figures import profile_comparison_figure
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.ml.predict import predict
from reflect_core.base.storage import data_dir


def training_summary(run: jobs.RunInfo) -> dict:
    result = run.result or {}
    metrics = result.get("metrics", {})
    return {
        "state": run.state,
        "rmse": metrics.get("model", {}).get("rmse"),
        "baseline_rmse": metrics.get("baseline", {}).get("rmse"),
        "r2": metrics.get("model", {}).get("r2"),
        "nr_decades": metrics.get("model", {}).get("nr_decades_median"),
        "parameters": result.get("parameters"),
        "total_s": result.get("total_s"),
        "bytes": directory_size(run.run_dir),
    }


def refreshed(user: User, record: dict) -> dict:
    """The record, with its training summary brought up to date from its run."""
    if record["kind"] != "training" or not record.get("run_id"):
        return record
    try:
        run = jobs.get(record["run_id"], user=user)
    except jobs.JobError:
        return record  # the run was deleted elsewhere: keep what the record knew
    if record["summary"].get("state") == run.state and run.state not in ("running", "queued"):
        return record
    return history.update(user, record["id"], summary=training_summary(run))


def list_with_summaries(user: User, **filters) -> list[dict]:
    return [refreshed(user, r) for r in history.list_records(user, **filters)]


def delete_record(user: User, record_id: str) -> None:
    """Delete a record and what it points at; a running job must be stopped first."""
    record = history.get(user, record_id)
    if record["kind"] == "training" and record.get("run_id"):
        try:
            jobs.delete(record["run_id"], user=user)
        except jobs.JobError as exc:
            if "no run" not in str(exc) and "was deleted" not in str(exc):
                raise
    history.delete(user, record_id)


def delete_run(user: User, run_id: str) -> None:
    """Delete a run from the training page, and its history record."""
    jobs.delete(run_id, user=user)
    record = history.find_by_run(user, run_id)
    if record is not None:
        history.delete(user, record["id"])


def record_dir(record: dict):
    return data_dir() / record["files"] if record.get("files") else None


def model_meta(record: dict) -> dict:
    return json.loads((record_dir(record) / "model" / "model.json").read_text())


def shared_test_curves(trained: list[dict]) -> dict | None:
    """The test set common to several runs (same data and split), or None if they differ."""
    metas = [model_meta(r) for r in trained]
    first = metas[0]
    if any(m["dataset"] != first["dataset"] or m["test_index"] != first["test_index"] for m in metas[1:]):
        return None
    data = data_dir() / first["data_folder"] if first.get("data_folder") else record_dir(trained[0]) / "data"
    index = np.asarray(first["test_index"])
    return {"index": index, "z": np.asarray(first["z"]),
            "nr": np.load(data / NR_FILE, mmap_mode="r")[index], "sld": np.load(data / SLD_FILE, mmap_mode="r")[index]}


def profile_overlay(trained: list[dict], shared: dict, pick: int):
    """Ground truth and every run's prediction for one shared test curve."""
    curves = [("ground truth", np.asarray(shared["sld"][pick, 1]))]
    for record in trained:
        curves.append((record["name"], predict(record_dir(record) / "model", shared["nr"][pick:pick + 1])[0, 1]))
    return profile_comparison_figure(shared["z"], curves)
