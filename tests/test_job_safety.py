"""The job store under pressure: limits checked once, under its lock (at submit, resume and retry),
uploaded arrays that belong to someone else, and damaged state files that must not stop the queue."""

import dataclasses
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from test_job_backends import REMOTE, SMALL, FakeRemote

from reflect_core import jobs
from reflect_core.accounts.access import AccessError, User
from reflect_core.accounts.limits import LOCAL, SHARED, LimitError
from reflect_core.base.storage import atomic_write_json, read_json
from reflect_core.jobs.runfiles import locked, write_state
from reflect_core.ml.spec import SpecError, TrainSpec
from reflect_core.store import history, records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_JOB = dataclasses.replace(SHARED, concurrent_jobs=1)
QUEUED = TrainSpec.parse(SMALL)  # stays queued: REFLECT_MAX_CONCURRENT=0, no worker is started


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    monkeypatch.delenv("REFLECT_HEARTBEAT_TIMEOUT", raising=False)
    return tmp_path


def at_once(calls) -> list:
    """Run the calls in threads released together; each result is the return value or the exception."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def accepted_and_refused(results):
    refused = [r for r in results if isinstance(r, LimitError)]
    assert all(isinstance(r, (str, type(None), LimitError)) for r in results), results
    return [r for r in results if not isinstance(r, LimitError)], refused


# --- F7: the concurrent-jobs limit, checked atomically -----------------------------------------------------------


def test_simultaneous_submits_in_threads_accept_exactly_one():
    results = at_once([lambda: jobs.submit(QUEUED, "alice", limits=ONE_JOB) for _ in range(8)])
    accepted, refused = accepted_and_refused(results)
    assert len(accepted) == 1 and len(refused) == 7
    assert all("concurrent jobs per user: 1 already active, limit 1" in str(r) for r in refused)
    assert [r.run_id for r in jobs.list_runs()] == accepted
    assert jobs.submit(QUEUED, "bob", limits=ONE_JOB)  # per user


def test_simultaneous_submits_in_processes_accept_exactly_one(data_dir):
    start = time.time() + 8.0  # every process has imported everything by then
    code = ("import sys, time\n"
            "from reflect_core import jobs\n"
            "from reflect_core.accounts.limits import SHARED, LimitError\n"
            "from reflect_core.ml.spec import TrainSpec\n"
            f"spec = TrainSpec.parse({SMALL!r})\n"
            f"time.sleep(max(0.0, {start!r} - time.time()))\n"
            "try:\n"
            "    print('accepted', jobs.submit(spec, 'alice', limits=SHARED))\n"
            "except LimitError as exc:\n"
            "    print('refused', exc)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              text=True) for _ in range(5)]
    outputs = [p.communicate(timeout=120) for p in procs]
    lines = [out.strip() for out, _ in outputs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert sum(line.startswith("accepted") for line in lines) == 1, lines
    assert sum(line.startswith("refused") and "concurrent jobs" in line for line in lines) == 4, lines
    assert len(jobs.list_runs()) == 1


def _ended(owner: str, state: str, n: int) -> list[str]:
    """``n`` runs of ``owner`` in ``state`` (as a worker or the scheduler would have left them)."""
    run_ids = [jobs.submit(QUEUED, owner) for _ in range(n)]
    with locked():
        for run_id in run_ids:
            path = jobs.run_dir(run_id)
            write_state(path, read_json(path / jobs.STATE), state=state, ended=time.time())
    return run_ids


@pytest.mark.parametrize("action, state", [("resume", "paused"), ("retry", "failed"), ("retry", "stopped")])
def test_simultaneous_resumes_and_retries_accept_exactly_one(action, state):
    run_ids = _ended("alice", state, 6)
    results = at_once([lambda run_id=run_id: getattr(jobs, action)(run_id, limits=ONE_JOB) for run_id in run_ids])
    accepted, refused = accepted_and_refused(results)
    assert len(accepted) == 1 and len(refused) == 5, results
    assert sorted(r.state for r in jobs.list_runs()) == sorted(["queued"] + [state] * 5)


def test_resume_and_retry_check_the_spec_too():
    [run_id] = _ended("alice", "paused", 1)
    tight = dataclasses.replace(SHARED, epochs=2)  # the run asks for 3
    with pytest.raises(LimitError, match="epochs 3 > 2"):
        jobs.resume(run_id, limits=tight)
    jobs.resume(run_id, limits=SHARED)
    assert jobs.get(run_id).state == "queued"


def test_submit_training_passes_the_limits_and_leaves_nothing_when_refused():
    alice = User("alice")
    records.submit_training(alice, QUEUED, "first", limits=ONE_JOB)
    with pytest.raises(LimitError, match="concurrent jobs"):
        records.submit_training(alice, QUEUED, "second", limits=ONE_JOB)
    assert [r["name"] for r in history.list_records(alice)] == ["first"] and len(jobs.list_runs()) == 1


# --- F5: arrays in another user's folder ----------------------------------------------------------------------------


def _arrays(data_dir, owner: str, name: str = "set1") -> str:
    folder = data_dir / "uploads" / owner / "arrays" / name
    folder.mkdir(parents=True)
    q, z = np.geomspace(0.01, 0.2, 32), np.linspace(0, 100, 50)
    nr = np.stack([np.stack([q, np.ones_like(q)])] * 40).astype(np.float32)
    sld = np.stack([np.stack([z, np.zeros_like(z)])] * 40).astype(np.float32)
    np.save(folder / "nr_train.npy", nr)
    np.save(folder / "sld_train.npy", sld)
    return f"uploads/{owner}/arrays/{name}"


def _on_arrays(folder: str) -> TrainSpec:
    return TrainSpec.parse({"dataset": {"arrays": folder}, "model": SMALL["model"], "training": SMALL["training"]})


def test_someone_elses_arrays_are_refused_at_submit(data_dir):
    alices = _on_arrays(_arrays(data_dir, "alice"))
    for owner in ("bob", "root"):  # an admin's runs use the admin's own folder too
        with pytest.raises(SpecError, match=f"not one of {owner}'s array sets"):
            jobs.submit(alices, owner)
        with pytest.raises(SpecError):
            records.submit_training(User(owner, "admin" if owner == "root" else "user"), alices, limits=LOCAL)
    assert jobs.list_runs() == [] and history.list_records(User("root", "admin")) == []
    assert jobs.submit(alices, "alice", limits=SHARED)  # her own


def test_a_path_that_leads_out_of_the_owners_folder_is_refused(data_dir):
    _arrays(data_dir, "alice")
    _arrays(data_dir, "bob", "mine")
    (data_dir / "uploads" / "bob" / "arrays" / "link").symlink_to(data_dir / "uploads" / "alice" / "arrays" / "set1")
    for folder in ("uploads/bob/arrays/link", "uploads/bob/arrays/../../alice/arrays/set1"):
        with pytest.raises(SpecError, match="not one of bob's array sets"):
            jobs.submit(_on_arrays(folder), "bob")
    with pytest.raises(SpecError, match="not one of bob's array sets"):
        _on_arrays("uploads/alice/arrays/set1").bound_to("bob").dataset.path()  # the worker's view
    assert jobs.submit(_on_arrays("uploads/bob/arrays/mine"), "bob")


def test_a_spec_changed_after_submit_fails_at_launch_not_in_a_worker(data_dir):
    fake = FakeRemote()
    jobs.backends.register("modal", fake)
    try:
        spec = TrainSpec.parse({**_on_arrays(_arrays(data_dir, "bob")).to_dict(), "backend": "modal", "gpu": "T4"})
        run_id = jobs.submit(spec, "bob")
        _arrays(data_dir, "alice")
        raw = read_json(jobs.run_dir(run_id) / jobs.SPEC)
        atomic_write_json(jobs.run_dir(run_id) / jobs.SPEC, {**raw, "dataset": {**raw["dataset"],
                                                                               "arrays": "uploads/alice/arrays/set1"}})
        jobs.tick(max_concurrent=1)
        info = jobs.get(run_id)
        assert info.state == "failed" and "not one of bob's array sets" in info.error and fake.calls == {}
    finally:
        jobs.backends.unregister("modal")


# --- F11: a damaged state.json ----------------------------------------------------------------------------------------


DAMAGE = {
    "garbage": b"\x00\xff not json at all",
    "truncated": b'{"run_id": "x", "owner": "alice", "state": "queu',
    "a list": b'["alice", "queued"]',
    "missing keys": b'{"owner": "alice", "state": "queued"}',
    "wrong types": b'{"run_id": "x", "owner": "alice", "name": null, "state": "queued", "created": "yesterday", '
                   b'"queued_at": 1, "started": null, "ended": null, "backend": "modal", "ref": null, '
                   b'"attempts": "many", "error": null, "result": null}',
    "unknown state": b'{"owner": "alice", "name": null, "state": "exploded", "created": 1, "started": null, '
                     b'"ended": null, "backend": "modal", "ref": null, "attempts": 0, "error": null, "result": null}',
}


OWNER_STILL_NAMED = {"missing keys", "wrong types", "unknown state"}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_run_is_listed_and_deletable_and_the_queue_keeps_going(kind):
    fake = FakeRemote()
    jobs.backends.register("modal", fake)
    try:
        broken = jobs.submit(REMOTE, "alice", name="broken")
        bobs = jobs.submit(REMOTE, "bob", name="bob's")
        (jobs.run_dir(broken) / jobs.STATE).write_bytes(DAMAGE[kind])

        jobs.tick(max_concurrent=1)  # no exception, and bob's run starts
        assert jobs.get(bobs).state == "running" and len(fake.calls) == 1
        listed = {info.run_id: info for info in jobs.list_runs()}
        assert listed[broken].state == jobs.DAMAGED and "state.json" in listed[broken].error
        assert listed[broken].actions == ("delete",)
        owner_named = kind in OWNER_STILL_NAMED
        assert [info.run_id for info in jobs.runs_for(User("alice"))] == ([broken] if owner_named else [])
        assert broken in [info.run_id for info in jobs.runs_for(User("root", "admin"))]
        assert broken not in [info.run_id for info in jobs.runs_for(User("bob"))]
        assert jobs.active_count("alice") == 0
        with pytest.raises(jobs.JobError, match="damaged"):
            jobs.resume(broken)
        with pytest.raises(AccessError):
            jobs.delete(broken, user=User("bob"))
        jobs.delete(broken, user=User("alice") if owner_named else User("root", "admin"))
        assert [info.run_id for info in jobs.list_runs()] == [bobs]
    finally:
        jobs.backends.unregister("modal")


def test_damaged_side_files_do_not_hide_a_run():
    run_id = jobs.submit(QUEUED, "alice")
    (jobs.run_dir(run_id) / jobs.PROGRESS).write_text('{"phase": 5, "done": "half", "train_loss": {"a": 1}')
    (jobs.run_dir(run_id) / jobs.CONTROL).write_text("[1, 2")
    info = jobs.get(run_id)
    assert info.state == "queued" and info.progress == jobs.Progress()
    atomic_write_json(jobs.run_dir(run_id) / jobs.PROGRESS, {"phase": "training", "done": "half", "epoch": 2})
    assert (jobs.get(run_id).progress.phase, jobs.get(run_id).progress.done, jobs.get(run_id).progress.epoch) == (
        "training", 0, 2)


def test_a_model_json_data_folder_is_used_only_inside_the_record_owners_places(data_dir):
    from reflect_core.viz.report import _data_folder

    bobs_run = jobs.submit(QUEUED, "bob")
    alices_run = jobs.submit(QUEUED, "alice")
    _arrays(data_dir, "alice")
    _arrays(data_dir, "bob")
    record = {"owner": "alice", "files": f"runs/{alices_run}"}
    own = data_dir / "runs" / alices_run / "data"
    assert _data_folder("uploads/alice/arrays/set1", record) == data_dir / "uploads/alice/arrays/set1"
    assert _data_folder(f"runs/{alices_run}/data", record) == own
    for elsewhere in ("uploads/bob/arrays/set1", f"runs/{bobs_run}/data", "../outside", "/etc", "uploads/alice",
                      "runs", None, 5):
        assert _data_folder(elsewhere, record) == own, elsewhere
