"""The run store (DESIGN.md, Jobs): what users and workers do to runs, and what they read.

Every change of a run's state goes through the state machine below, under the
store's lock, in whichever process asks (a page, the command line, a worker), so
two tabs pressing Stop or two tickers starting the queue cannot both win. Users
submit, cancel, pause, stop, resume, retry and delete; a worker claims its
attempt, checks that it still owns it and records how it ended. Ending a run
because its worker is gone or silent is the scheduler's job, not the store's.

Reads (``get``, ``list_runs``) are in ``queries``. Requests that use resources (submit,
resume, retry) take the owner's ``Limits`` and are checked under the same lock as the change.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reflect_core.accounts.access import LOCAL_USER, AccessError, User, check_owner
from reflect_core.accounts.limits import Limits, check_spec
from reflect_core.base.storage import StorageError, atomic_write_json, read_json
from reflect_core.jobs import backends
from reflect_core.jobs.runfiles import (
    ALLOWED_FROM,  # noqa: F401 - part of the store's interface
    CONTROL,
    LOG,
    SPEC,
    STATE,
    WORKER_OUT,
    DamagedRun,
    JobError,
    active_runs,
    allows,
    append_log,
    check_run_id,
    end_attempt,
    load_state,
    locked,
    max_concurrent_jobs,
    read_state,
    remove,
    run_dir,
    runs_dir,
    usable_runs,
    write_state,
)
from reflect_core.jobs.scheduler import schedule
from reflect_core.ml.spec import TrainSpec

KEPT_ON_RETRY = frozenset({SPEC, STATE, LOG, WORKER_OUT, "data"})  # generated data is reused

_REFUSAL_HINTS = {
    "cancel": "only queued runs can be cancelled",
    "pause": "only running runs can be paused",
    "stop": "only running runs can be stopped",
    "resume": "only paused runs, and failed runs with a checkpoint, can be resumed",
    "retry": "only failed, stopped, cancelled or completed runs can be retried",
    "delete": "stop it first",
}


@dataclass(frozen=True)
class Claim:
    """What a worker gets when it takes its run (see ``claim``)."""

    run_id: str
    run_dir: Path
    attempt: int
    spec: dict
    owner: str = ""  # whose run it is: the spec's uploaded arrays must be theirs


# ---- transitions ---------------------------------------------------------------------------------


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
        if not allows(action, state, path):
            raise JobError(_refusal(action, run_id, state["state"]))
        yield path, state


def new_run_id() -> str:
    """A fresh id (UTC time, microseconds and a random part) for ``submit(..., run_id=...)``."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}-{int(now * 1e6) % 1_000_000:06d}-{secrets.token_hex(2)}"


def _queue(path: Path, state: dict) -> None:
    write_state(path, state, state="queued", queued_at=time.time(), ended=None, error=None)


def _check_limits(spec: TrainSpec, owner: str, limits: Limits | None) -> None:
    """Under the lock: the spec and the owner's active runs within ``limits`` (every violation in
    one LimitError), so that simultaneous requests cannot all pass a check made before."""
    if limits is not None:
        check_spec(spec, limits, running_jobs=active_runs(usable_runs(), owner), owner=owner)


def submit(spec: TrainSpec, owner: str, name: str | None = None, run_id: str | None = None,
           limits: Limits | None = None, estimate_s: float | None = None) -> str:
    """Queue a job; it starts at once when a slot is free. Returns the run id: ``run_id`` when
    given (an id the caller reserved with ``new_run_id``; refused if a run has it already).
    With ``limits`` (the owner's profile) the spec and the owner's active runs are checked
    under the store's lock. Uploaded arrays must lie in the owner's own folder. ``estimate_s``: the
    training time the page estimated, kept to check estimates against what runs take."""
    if not isinstance(spec, TrainSpec):
        raise JobError(f"a job needs a TrainSpec (parse it at the boundary), got {type(spec).__name__}")
    if not isinstance(owner, str) or not owner:
        raise JobError("a job needs an owner (a non-empty user name)")
    spec = spec.check_owner(owner)
    backends.get(spec.backend)  # "the modal backend is not configured" before anything is written
    with locked():
        _check_limits(spec, owner, limits)
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
            **({"estimate_s": float(estimate_s)} if estimate_s is not None else {}),
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


def _spec_within(path: Path, state: dict, limits: Limits | None) -> None:
    """A run about to be queued again: its spec and its owner's active runs within ``limits``."""
    if limits is not None:
        _check_limits(TrainSpec.parse(read_json(path / SPEC)), state["owner"], limits)


def resume(run_id: str, user: User = LOCAL_USER, limits: Limits | None = None) -> None:
    """Queue a paused run, or a failed one with a checkpoint; the pipeline continues from the checkpoint.
    With ``limits``, checked like a submit, under the same lock."""
    with _transition(run_id, "resume", user) as (path, state):
        _spec_within(path, state, limits)
        _queue(path, state)
        schedule(max_concurrent_jobs())


def retry(run_id: str, user: User = LOCAL_USER, limits: Limits | None = None) -> None:
    """Queue the run again from the start, in the same directory, reusing its generated ``data/``.
    With ``limits``, checked like a submit, under the same lock."""
    with _transition(run_id, "retry", user) as (path, state):
        _spec_within(path, state, limits)
        for entry in path.iterdir():
            if entry.name not in KEPT_ON_RETRY:
                remove(entry)
        append_log(path, "retry: starting again from the beginning (generated data is kept)")
        _queue(path, {**state, "result": None})
        schedule(max_concurrent_jobs())


def rename(run_id: str, name: str, user: User = LOCAL_USER) -> None:
    """The run's shown name (the Train page's run list), in any state; the owner's or an admin's."""
    with locked():
        path = run_dir(run_id)
        state = read_state(path)
        check_owner(user, state["owner"], f"run {run_id}")
        write_state(path, state, name=name)


def delete(run_id: str, user: User = LOCAL_USER) -> None:
    """Remove a run that is not running, with all its files; a damaged run too (its owner's, as far
    as its state.json tells, or an admin's to remove)."""
    with locked():
        path = run_dir(run_id)
        try:
            state = read_state(path)
        except DamagedRun as exc:
            owner = exc.salvage.get("owner")
            if owner is None and not user.is_admin:
                raise AccessError(f"run {run_id} is damaged and names no owner: an admin can delete it") from None
            check_owner(user, owner or user.name, f"run {run_id}")
        else:
            check_owner(user, state["owner"], f"run {run_id}")
            if not allows("delete", state, path):
                raise JobError(_refusal("delete", run_id, state["state"]))
        # Renamed first so that a removal that fails half-way leaves no half run.
        trash = path.with_name(f".deleting-{run_id}")
        try:
            path.rename(trash)
            shutil.rmtree(trash)
        except OSError as exc:
            raise JobError(f"cannot delete run {run_id}: {exc}") from None


# ---- the worker's side (a worker that can see the run's files) ------------------------------------


def claim(path: Path, ref: str | None = None, home: Path | None = None) -> Claim:
    """Called by the worker the scheduler launched for this run directory. ``ref`` is the worker's
    own ref on its backend (default: this process's pid, the local backend's ref). ``home``: the
    folder the run directory must lie in (default: the run store's; a fit runner's is its owner's)."""
    home = runs_dir() if home is None else home
    if path.resolve().parent != home.resolve():
        raise JobError(f"{path} is not a run directory in {home} (is REFLECT_DATA_DIR the same?)")
    ref = str(os.getpid()) if ref is None else ref
    with locked():
        state = read_state(path)
        if state["state"] != "running" or state["ref"] != ref:
            raise JobError(f"run {path.name} is {state['state']} and not waiting for worker {ref}")
    spec = read_json(path / SPEC)
    return Claim(run_id=path.name, run_dir=path, attempt=state["attempts"], spec=spec, owner=state["owner"])


def _owned_by(claimed: Claim, state: dict | None) -> bool:
    return bool(state) and state["state"] == "running" and state["attempts"] == claimed.attempt


def is_current(claimed: Claim) -> bool:
    """False once the scheduler gave up on this attempt (or the run is gone): its worker must exit."""
    try:
        return _owned_by(claimed, load_state(claimed.run_dir))
    except StorageError:  # DamagedRun too
        return True  # unreadable is not a verdict


def finish(claimed: Claim, outcome: str, error: str | None = None, result: dict | None = None) -> bool:
    """Record how the worker's attempt ended (completed, paused, stopped or failed).
    False when the scheduler had already given up on this attempt, so nothing was recorded."""
    with locked():
        try:
            state = load_state(claimed.run_dir)
        except DamagedRun:
            return False  # nothing can be recorded in a damaged state; it stays listed as damaged
        if not _owned_by(claimed, state):
            return False
        end_attempt(claimed.run_dir, state, outcome, error=error, result=result)
        return True
