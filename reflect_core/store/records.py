"""History records and the runs they point at, kept in step.

A training record is written when its job is submitted (``submit_training``: both or
neither). Its summary is derived from the run's ``model.json`` once the run has
completed (pulled when listed, so no worker has to know about history); the numbers
live in that file alone. Deleting a training record deletes its run, and its Hub copy when a
Hub is configured (``hub``: a ``store.hub.HubRunStore``).
"""

from __future__ import annotations

import shutil

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.accounts.limits import Limits
from reflect_core.base.errors import NotFound, ReflectError
from reflect_core.base.storage import data_dir, read_json
from reflect_core.ml.meta import ModelLoadError, ModelMeta
from reflect_core.ml.spec import TrainSpec
from reflect_core.store import history
from reflect_core.store.bundles import directory_size
from reflect_core.store.hub import HubError, hub_cache_dir

MODEL_FOLDER = "model"  # a run's trained model, inside its run directory


def submit_training(user: User, spec: TrainSpec, name: str | None = None,
                    limits: Limits | None = None, estimate_s: float | None = None) -> tuple[str, dict]:
    """Queue a training run and add its history record: (run id, record). The record is
    written first under a reserved run id, so a refused or failed submission leaves
    neither an orphan run nor a record pointing at nothing. ``limits`` (the user's profile)
    are checked by the job store, under its lock, with the user's active runs."""
    run_id = jobs.new_run_id()
    record = history.add(user, "training", name or run_id, spec.to_dict(), files=f"runs/{run_id}", run_id=run_id)
    try:
        jobs.submit(spec, user.name, name, run_id=run_id, limits=limits, estimate_s=estimate_s)
    except BaseException:
        history.delete(user, record["id"])
        raise
    return run_id, record


def estimate_ratios(user: User, newest: int = 10) -> list[float]:
    """Measured / estimated training time per epoch of the user's last ``newest`` completed runs on this
    machine that were estimated (per epoch: early stopping ends runs before their estimated epochs)."""
    ratios = []
    runs = sorted((r for r in jobs.runs_for(user) if r.state == "completed" and r.backend == "local"
                   and r.estimate_s and r.owner == user.name), key=lambda r: r.created, reverse=True)
    for run in runs[:newest]:
        try:
            meta = ModelMeta.read(run.run_dir / MODEL_FOLDER)
            spec = TrainSpec.parse(read_json(run.run_dir / jobs.SPEC))
        except (ModelLoadError, ReflectError):
            continue
        times = (meta.history or {}).get("time") or []
        if times and spec.training.epochs:
            ratios.append((times[-1] / len(times)) / (run.estimate_s / spec.training.epochs))
    return ratios


def training_summary(run: jobs.RunInfo) -> dict:
    summary = {"state": run.state, "total_s": (run.result or {}).get("total_s"), "bytes": directory_size(run.run_dir)}
    if run.state == "completed":
        try:
            summary.update(ModelMeta.read(run.run_dir / MODEL_FOLDER).summary())
        except ModelLoadError:
            pass  # a damaged model: the record still says the run completed
    return summary


def refreshed(user: User, record: dict) -> dict:
    """The record, with its training summary brought up to date from its run."""
    if record["kind"] != "training" or not record.get("run_id"):
        return record
    try:
        run = jobs.get(record["run_id"], user=user)
    except NotFound:
        return record  # the run was deleted elsewhere: keep what the record knew
    if record["summary"].get("state") == run.state and run.state not in ("running", "queued"):
        return record
    if run.state == jobs.DAMAGED:
        return {**record, "summary": {**record["summary"], "state": run.state}}  # shown, never stored
    return history.update(user, record["id"], summary=training_summary(run))


def list_with_summaries(user: User, **filters) -> list[dict]:
    return [refreshed(user, r) for r in history.list_records(user, **filters)]


def _delete_hub_copy(hub, run_id: str) -> str | None:
    """Delete the run's Hub files and its local Hub cache; a failure is returned as a message, never raised."""
    if hub is None:
        return None
    try:
        shutil.rmtree(hub_cache_dir(run_id), ignore_errors=True)
        hub.delete_run(run_id)
    except HubError as exc:
        return f"Run {run_id} was deleted here, but its copy on the Hub remains ({exc})."
    return None


def delete_record(user: User, record_id: str, hub=None) -> str | None:
    """Delete a record and what it points at (its run, and the run's Hub files when ``hub`` is given); a
    running job must be stopped first. Returns a message when the Hub copy could not be deleted."""
    record = history.get(user, record_id)
    warning = None
    if record["kind"] == "training" and record.get("run_id"):
        try:
            jobs.delete(record["run_id"], user=user)
        except NotFound:
            pass  # already gone: the record goes too
        warning = _delete_hub_copy(hub, record["run_id"])
    history.delete(user, record_id)
    return warning


def delete_run(user: User, run_id: str, hub=None) -> str | None:
    """Delete a run from the training page, its history record and (``hub`` given) its Hub files. Returns a
    message when the Hub copy could not be deleted (the local delete has happened)."""
    jobs.delete(run_id, user=user)
    record = history.find_by_run(user, run_id)
    if record is not None:
        history.delete(user, record["id"])
    return _delete_hub_copy(hub, run_id)


def rename_record(user: User, record_id: str, new_name: str) -> dict:
    """Rename a history record and, for a training run of this server, the run itself, so that the
    Train page's run list shows the same name. The record is renamed first: its name checks apply."""
    record = history.rename(user, record_id, new_name)
    if record.get("kind") == "training" and record.get("run_id"):
        try:
            jobs.rename(record["run_id"], record["name"], user)
        except NotFound:  # the run was deleted, or came from another server: the record is what is left
            pass
    return record


def record_dir(record: dict):
    return data_dir() / record["files"] if record.get("files") else None


def model_meta(record: dict) -> ModelMeta:
    """The metadata of a training record's model (``ModelLoadError`` when it has none)."""
    folder = record_dir(record)
    if folder is None:
        raise ModelLoadError(f"record {record['name']!r} has no files")
    return ModelMeta.read(folder / MODEL_FOLDER)
