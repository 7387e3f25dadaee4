"""The run store (DESIGN.md, Jobs): what users and workers do to runs, and what they read.

Every change of a run's state goes through the state machine below, under the
store's lock, in whichever process asks (a page, the command line, a worker), so
two tabs pressing Stop or two tickers starting the queue cannot both win. Users
submit, cancel, pause, stop, resume, retry and delete; a worker claims its
attempt, checks that it still owns it and records how it ended. Ending a run
because its worker is gone or silent is the scheduler's job, not the store's.

Reads (``get``, ``list_runs``) take no lock and touch only local files, so a page
can poll them as often as it likes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reflect_core.accounts.access import LOCAL_USER, User, check_owner
from reflect_core.base.storage import StorageError, atomic_write_json, read_json
from reflect_core.jobs import backends
from reflect_core.jobs.runfiles import (
    CHECKPOINT,
    CONTROL,
    LOG,
    PROGRESS,
    SPEC,
    STATE,
    STATES,
    WORKER_OUT,
    JobError,
    RunNotFound,
    all_runs,
    append_log,
    check_run_id,
    end_attempt,
    load_state,
    locked,
    max_concurrent_jobs,
    queued_in_order,
    read_state,
    remove,
    run_dir,
    runs_dir,
    write_state,
)
from reflect_core.jobs.scheduler import schedule
from reflect_core.ml.spec import TrainSpec

KEPT_ON_RETRY = frozenset({SPEC, STATE, LOG, WORKER_OUT, "data"})  # generated data is reused

# Which states each action accepts; resume of a failed run also needs a checkpoint.
ALLOWED_FROM = {
    "cancel": frozenset({"queued"}),
    "pause": frozenset({"running"}),
    "stop": frozenset({"running"}),
    "resume": frozenset({"paused", "failed"}),
    "retry": frozenset({"failed", "stopped", "cancelled", "completed"}),
    "delete": frozenset(STATES) - {"running"},
}
_REFUSAL_HINTS = {
    "cancel": "only queued runs can be cancelled",
    "pause": "only running runs can be paused",
    "stop": "only running runs can be stopped",
    "resume": "only paused runs, and failed runs with a checkpoint, can be resumed",
    "retry": "only failed, stopped, cancelled or completed runs can be retried",
    "delete": "stop it first",
}


@dataclass(frozen=True)
class Progress:
    """What the worker last reported (``progress.json``)."""

    phase: str = ""
    done: int = 0
    total: int = 0
    epoch: int = 0
    epochs_total: int = 0
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    log_tail: list = field(default_factory=list)
    heartbeat: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "Progress":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    owner: str
    name: str | None
    state: str
    created: float  # times are Unix seconds
    started: float | None  # start of the latest attempt
    ended: float | None
    attempts: int
    backend: str  # the registry name of what runs its workers ("local", "modal")
    ref: str | None  # the backend's opaque handle on the worker of the latest attempt
    pid: int | None  # that worker's process id, on the local backend only
    error: str | None
    result: dict | None
    queue_position: int | None  # 1 = next to start; None unless queued
    requested: str | None  # "pause" or "stop" sent to a running worker, not yet acted on
    actions: tuple[str, ...]  # what this run's state allows now, e.g. ("pause", "stop")
    progress: Progress
    run_dir: Path


@dataclass(frozen=True)
class Claim:
    """What a worker gets when it takes its run (see ``claim``)."""

    run_id: str
    run_dir: Path
    attempt: int
    spec: dict


# ---- transitions ---------------------------------------------------------------------------------


def _allows(action: str, state: dict, path: Path) -> bool:
    if state["state"] not in ALLOWED_FROM[action]:
        return False
    return action != "resume" or state["state"] == "paused" or (path / CHECKPOINT).is_file()


def _refusal(action: str, run_id: str, state: str) -> str:
    hint = _REFUSAL_HINTS[action]
    if action == "resume" and state == "failed":
        hint = "it has no checkpoint to resume from; retry it instead"
    return f"cannot {action} run {run_id}: it is {state} ({hint})"


@contextmanager
def _transition(run_id: str, action: str, user: User):
    """Under the lock: the run's directory and state, once the user may and the state allows."""
    with locked():
        path = run_dir(run_id)
        state = read_state(path)
        check_owner(user, state["owner"], f"run {run_id}")
        if not _allows(action, state, path):
            raise JobError(_refusal(action, run_id, state["state"]))
        yield path, state


def new_run_id() -> str:
    """A fresh id (UTC time, microseconds and a random part) for ``submit(..., run_id=...)``."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}-{int(now * 1e6) % 1_000_000:06d}-{secrets.token_hex(2)}"


def _queue(path: Path, state: dict) -> None:
    write_state(path, state, state="queued", queued_at=time.time(), ended=None, error=None)


def submit(spec: TrainSpec, owner: str, name: str | None = None, run_id: str | None = None) -> str:
    """Queue a job; it starts at once when a slot is free. Returns the run id: ``run_id`` when
    given (an id the caller reserved with ``new_run_id``; refused if a run has it already)."""
    if not isinstance(spec, TrainSpec):
        raise JobError(f"a job needs a TrainSpec (parse it at the boundary), got {type(spec).__name__}")
    if not isinstance(owner, str) or not owner:
        raise JobError("a job needs an owner (a non-empty user name)")
    backends.get(spec.backend)  # "the modal backend is not configured" before anything is written
    with locked():
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        path = runs_dir() / run_id
        try:
            path.mkdir()
        except FileExistsError:
            raise JobError(f"run {run_id} already exists") from None
        try:
            atomic_write_json(path / SPEC, spec.to_dict())
        except (TypeError, ValueError) as exc:
            shutil.rmtree(path)
            raise JobError(f"the job spec cannot be saved as JSON: {exc}") from None
        now = time.time()
        write_state(path, {
            "run_id": run_id, "owner": owner, "name": name, "state": "queued", "created": now,
            "queued_at": now, "started": None, "ended": None, "backend": spec.backend, "ref": None,
            "attempts": 0, "error": None, "result": None,
        })
        schedule(max_concurrent_jobs())
    return run_id


def cancel(run_id: str, user: User = LOCAL_USER) -> None:
    with _transition(run_id, "cancel", user) as (path, state):
        write_state(path, state, state="cancelled", ended=time.time())


def _request(run_id: str, action: str, user: User) -> None:
    with _transition(run_id, action, user) as (path, state):
        backend = backends.get(state["backend"])
        atomic_write_json(path / CONTROL, {"action": action, "requested": time.time()})
        try:
            backend.request(state["ref"], action)
        except Exception as exc:
            remove(path / CONTROL)
            raise JobError(f"could not send {action} to the {backend.name} worker of run {run_id}: {exc}") from None


def pause(run_id: str, user: User = LOCAL_USER) -> None:
    """Ask the worker to checkpoint and exit; the run becomes paused when it has."""
    _request(run_id, "pause", user)


def stop(run_id: str, user: User = LOCAL_USER) -> None:
    """Ask the worker to end without a checkpoint; the run becomes stopped when it has."""
    _request(run_id, "stop", user)


def resume(run_id: str, user: User = LOCAL_USER) -> None:
    """Queue a paused run, or a failed one with a checkpoint; the pipeline continues from the checkpoint."""
    with _transition(run_id, "resume", user) as (path, state):
        _queue(path, state)
        schedule(max_concurrent_jobs())


def retry(run_id: str, user: User = LOCAL_USER) -> None:
    """Queue the run again from the start, in the same directory, reusing its generated ``data/``."""
    with _transition(run_id, "retry", user) as (path, state):
        for entry in path.iterdir():
            if entry.name not in KEPT_ON_RETRY:
                remove(entry)
        append_log(path, "retry: starting again from the beginning (generated data is kept)")
        _queue(path, {**state, "result": None})
        schedule(max_concurrent_jobs())


def delete(run_id: str, user: User = LOCAL_USER) -> None:
    """Remove a run that is not running, with all its files."""
    with _transition(run_id, "delete", user) as (path, _):
        # Renamed first so that a removal that fails half-way leaves no half run.
        trash = path.with_name(f".deleting-{run_id}")
        try:
            path.rename(trash)
            shutil.rmtree(trash)
        except OSError as exc:
            raise JobError(f"cannot delete run {run_id}: {exc}") from None


# ---- reading -------------------------------------------------------------------------------------


def _queue_positions(runs: list[tuple[Path, dict]]) -> dict[str, int]:
    return {path.name: i + 1 for i, (path, _) in enumerate(queued_in_order(runs))}


def _pending_request(path: Path, state: dict) -> str | None:
    if state["state"] != "running":
        return None
    return (read_json(path / CONTROL) or {}).get("action")


def _info(path: Path, state: dict, queue_position: int | None) -> RunInfo:
    ref = state["ref"]
    return RunInfo(
        run_id=path.name, owner=state["owner"], name=state["name"], state=state["state"],
        created=state["created"], started=state["started"], ended=state["ended"], attempts=state["attempts"],
        backend=state["backend"], ref=ref,
        pid=int(ref) if state["backend"] == "local" and ref and ref.isdigit() else None,
        error=state["error"], result=state["result"],
        queue_position=queue_position, requested=_pending_request(path, state),
        actions=tuple(action for action in ALLOWED_FROM if _allows(action, state, path)),
        progress=Progress.from_dict(read_json(path / PROGRESS) or {}), run_dir=path,
    )


def get(run_id: str, user: User = LOCAL_USER) -> RunInfo:
    path = run_dir(run_id)
    runs = all_runs()
    state = next((state for p, state in runs if p.name == run_id), None)
    if state is None:
        raise RunNotFound(f"run {run_id} was deleted")
    check_owner(user, state["owner"], f"run {run_id}")
    return _info(path, state, _queue_positions(runs).get(run_id))


def list_runs(owner: str | None = None) -> list[RunInfo]:
    """Runs, newest first; only ``owner``'s when given."""
    runs = all_runs()
    positions = _queue_positions(runs)
    return [
        _info(path, state, positions.get(path.name))
        for path, state in reversed(runs)
        if owner is None or state["owner"] == owner
    ]


def runs_for(user: User) -> list[RunInfo]:
    """What ``user`` may see: their own runs, or every run for an admin."""
    return list_runs(None if user.is_admin else user.name)


def active_count(owner: str) -> int:
    """Queued or running jobs of one user (for the concurrent-jobs limit)."""
    return sum(1 for run in list_runs(owner) if run.state in ("queued", "running"))


# ---- the worker's side (a worker that can see the run's files) ------------------------------------


def claim(path: Path, ref: str | None = None) -> Claim:
    """Called by the worker the scheduler launched for this run directory. ``ref`` is the worker's
    own ref on its backend (default: this process's pid, the local backend's ref)."""
    if path.resolve().parent != runs_dir().resolve():
        raise JobError(f"{path} is not a run directory in {runs_dir()} (is REFLECT_DATA_DIR the same?)")
    ref = str(os.getpid()) if ref is None else ref
    with locked():
        state = read_state(path)
        if state["state"] != "running" or state["ref"] != ref:
            raise JobError(f"run {path.name} is {state['state']} and not waiting for worker {ref}")
    spec = read_json(path / SPEC)
    return Claim(run_id=path.name, run_dir=path, attempt=state["attempts"], spec=spec)


def _owned_by(claimed: Claim, state: dict | None) -> bool:
    return bool(state) and state["state"] == "running" and state["attempts"] == claimed.attempt


def is_current(claimed: Claim) -> bool:
    """False once the scheduler gave up on this attempt (or the run is gone): its worker must exit."""
    try:
        return _owned_by(claimed, load_state(claimed.run_dir))
    except StorageError:
        return True  # unreadable is not a verdict


def finish(claimed: Claim, outcome: str, error: str | None = None, result: dict | None = None) -> bool:
    """Record how the worker's attempt ended (completed, paused, stopped or failed).
    False when the scheduler had already given up on this attempt, so nothing was recorded."""
    with locked():
        state = load_state(claimed.run_dir)
        if not _owned_by(claimed, state):
            return False
        end_attempt(claimed.run_dir, state, outcome, error=error, result=result)
        return True
