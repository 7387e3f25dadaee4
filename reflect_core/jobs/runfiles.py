"""The files of the run store, shared by the store, the scheduler and the backends.

Runs live under ``data_dir()/runs/<run_id>/`` (JSON written atomically, see ``storage``):

- ``spec.json``: the job spec, written once by ``submit``.
- ``state.json``: owner, name, state, times, ``backend`` and ``ref`` (the backend's
  opaque handle on the worker of the latest attempt), attempts, error, result, and
  ``polled_at`` (when the scheduler last asked a remote backend). Changed only under
  the store's lock (``jobs.lock``).
- ``progress.json``: phase, done/total, epoch, losses, the last log lines and a
  heartbeat time. A local worker writes it itself; for a remote worker the scheduler
  writes what the backend's poll brought back.
- ``control.json``: a pending request to the running worker, ``{"action": "pause"|"stop"}``.
- ``log.txt`` (the full log, kept across attempts), ``worker.out`` (a local worker's
  stdout and stderr), and whatever the pipeline writes: ``data/``, ``checkpoint.pt``, ``model/``.

This module sits below the store and the scheduler (both read and write these files)
so that neither has to import the other's internals.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from reflect_core.base.errors import NotFound, ReflectError
from reflect_core.base.storage import StorageError, atomic_write_json, data_dir, read_json

STATES = ("queued", "running", "paused", "stopped", "failed", "completed", "cancelled")
ACTIVE = ("queued", "running")  # what counts against a user's concurrent-jobs limit
DAMAGED = "damaged"  # not a state of the machine: a run whose state.json cannot be used (listed, deletable)
# Which states each action accepts; resume of a failed run also needs a checkpoint.
ALLOWED_FROM = {
    "cancel": frozenset({"queued"}),
    "pause": frozenset({"running"}),
    "stop": frozenset({"running"}),
    "resume": frozenset({"paused", "failed"}),
    "retry": frozenset({"failed", "stopped", "cancelled", "completed"}),
    "delete": frozenset(STATES) - {"running"},
}
OUTCOMES = ("completed", "paused", "stopped", "failed")  # how a worker's attempt can end
HEARTBEAT_TIMEOUT_S = 20.0  # env REFLECT_HEARTBEAT_TIMEOUT overrides it
MAX_CONCURRENT = 1  # env REFLECT_MAX_CONCURRENT overrides it
LOCK_TIMEOUT_S = 30.0

SPEC, STATE, PROGRESS, CONTROL, LOG = "spec.json", "state.json", "progress.json", "control.json", "log.txt"
WORKER_OUT, CHECKPOINT = "worker.out", "checkpoint.pt"

RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]*")


class JobError(ReflectError):
    """A refused or impossible job operation; the message names the run and its state."""


class RunNotFound(JobError, NotFound):
    """The run does not exist (never did, or was deleted): callers catch ``NotFound``, not message text."""


class DamagedRun(JobError, StorageError):
    """A run whose state.json is unreadable, not an object, or lacks a field or has one of the
    wrong type. ``salvage`` holds what could still be read (owner, name, created), for listing."""

    def __init__(self, message: str, salvage: dict | None = None):
        super().__init__(message)
        self.salvage = salvage or {}


# ---- settings (environment; workers inherit it) ------------------------------------------------


def _env_number(name: str, default, cast):
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        raise JobError(f"environment variable {name} must be a number, got {raw!r}") from None


def heartbeat_timeout_s() -> float:
    return _env_number("REFLECT_HEARTBEAT_TIMEOUT", HEARTBEAT_TIMEOUT_S, float)


def max_concurrent_jobs() -> int:
    return _env_number("REFLECT_MAX_CONCURRENT", MAX_CONCURRENT, int)


# ---- paths and state ---------------------------------------------------------------------------


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(exist_ok=True)
    return path


def check_run_id(run_id) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise JobError(f"{run_id!r} is not a run id")
    return run_id


def run_dir(run_id: str) -> Path:
    """The directory of an existing run."""
    path = runs_dir() / check_run_id(run_id)
    if not (path / STATE).is_file():
        raise RunNotFound(f"no run {run_id} in {runs_dir()}")
    return path


def migrated(state: dict) -> dict:
    """A state as this version writes it: one written before backends existed has a bare
    ``pid`` and no ``backend``; it was a local worker, whose ref is its pid as text."""
    if "backend" in state:
        return state
    state = dict(state)
    pid = state.pop("pid", None)
    state.update(backend="local", ref=None if pid is None else str(pid))
    return state


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_OPTIONAL_TEXT, _OPTIONAL_NUMBER = (str, type(None)), "number or null"
# Each field the store, the scheduler and the pages read, and what it must hold.
_FIELD_TYPES = {
    "owner": str, "name": _OPTIONAL_TEXT, "state": str, "created": "number", "started": _OPTIONAL_NUMBER,
    "ended": _OPTIONAL_NUMBER, "backend": str, "ref": _OPTIONAL_TEXT, "attempts": int,
    "error": _OPTIONAL_TEXT, "result": (dict, type(None)),
}
# compute_s: seconds of the attempts that ended; attempt_start: the progress ({"phase", "done"}) the
# latest attempt started from, so that its speed (and the time left) is measured on its own work.
_OPTIONAL_FIELDS = {"compute_s": _OPTIONAL_NUMBER, "attempt_start": (dict, type(None)), "estimate_s": _OPTIONAL_NUMBER,
                    "queued_at": _OPTIONAL_NUMBER, "polled_at": _OPTIONAL_NUMBER, "alive_at": _OPTIONAL_NUMBER,
                    "poll_error": _OPTIONAL_TEXT}


def _fits(value, kind) -> bool:
    if kind == "number":
        return _number(value)
    if kind == _OPTIONAL_NUMBER:
        return value is None or _number(value)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _salvage(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    kept = {"owner": raw.get("owner"), "name": raw.get("name"), "created": raw.get("created")}
    return {key: value for key, value in kept.items()
            if (key == "created" and _number(value)) or (key != "created" and isinstance(value, str) and value)}


def checked_state(path: Path, raw) -> dict:
    """``raw`` (a parsed state.json) as this version writes it, with every field of its type."""
    if not isinstance(raw, dict):
        raise DamagedRun(f"run {path.name}: state.json is damaged (it holds a {type(raw).__name__}, not an object)")
    state = migrated(raw)
    problems = [f"{name} is missing" if name not in state else f"{name} is {type(state[name]).__name__}"
                for name, kind in _FIELD_TYPES.items() if name not in state or not _fits(state[name], kind)]
    problems += [f"{name} is {type(state[name]).__name__}" for name, kind in _OPTIONAL_FIELDS.items()
                 if name in state and not _fits(state[name], kind)]
    if not problems and (state["state"] not in STATES or not state["owner"] or state["attempts"] < 0):
        problems.append(f"state {state['state']!r}, owner {state['owner']!r}, attempts {state['attempts']}")
    if not problems and state["state"] == "queued" and not _number(state.get("queued_at")):
        problems.append("a queued run has no queued_at time")
    if problems:
        raise DamagedRun(f"run {path.name}: state.json is damaged ({'; '.join(problems)})", _salvage(raw))
    return state


def load_state(path: Path) -> dict | None:
    """The run's state, or None while it is being created or deleted; ``DamagedRun`` when its
    state.json is unreadable or malformed."""
    try:
        raw = read_json(path / STATE)
    except StorageError as exc:
        raise DamagedRun(f"run {path.name}: state.json is damaged ({exc})") from None
    return None if raw is None else checked_state(path, raw)


def read_state(path: Path) -> dict:
    state = load_state(path)
    if state is None:
        raise RunNotFound(f"run {path.name} was deleted")
    return state


def write_state(path: Path, current: dict, /, **changes) -> dict:
    new = {**current, **changes}
    atomic_write_json(path / STATE, new)
    return new


def end_attempt(path: Path, state: dict, outcome: str, error: str | None = None, result: dict | None = None) -> dict:
    """Record how an attempt ended (the worker's word, or the scheduler's verdict); a pending request is void."""
    remove(path / CONTROL)
    now = time.time()
    compute = (state.get("compute_s") or 0.0) + (now - state["started"] if state.get("started") else 0.0)
    return write_state(path, state, state=outcome, ended=now, error=error, result=result, compute_s=compute)


def append_log(path: Path, message: str) -> None:
    with open(path / LOG, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def scan_runs() -> tuple[list[tuple[Path, dict]], list[tuple[Path, DamagedRun]]]:
    """(runs with a usable state, damaged runs), oldest first. Reads need no lock: files are
    replaced atomically. One damaged run never hides the others."""
    runs, damaged = [], []
    for path in sorted(runs_dir().iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            state = load_state(path)
        except DamagedRun as exc:
            damaged.append((path, exc))
            continue
        if state is not None:  # a run being created or deleted has none
            runs.append((path, state))
    return runs, damaged


def usable_runs() -> list[tuple[Path, dict]]:
    """(run directory, state) of every run with a usable state, oldest first: what the store and
    the scheduler act on (damaged runs are skipped; ``scan_runs`` lists them)."""
    return scan_runs()[0]


def allows(action: str, state: dict, path: Path) -> bool:
    """Whether a run in ``state`` accepts ``action`` now."""
    if state["state"] not in ALLOWED_FROM[action]:
        return False
    return action != "resume" or state["state"] == "paused" or (path / CHECKPOINT).is_file()


def all_runs() -> list[tuple[Path, dict]]:
    """(run directory, state) of every run, oldest first, for accounting by owner: a damaged
    run comes with what could be read of its state (``owner``, ``name``, ``created``), or not
    at all when nothing could. Acting on runs needs ``usable_runs``."""
    runs, damaged = scan_runs()
    return sorted(runs + [(path, exc.salvage) for path, exc in damaged if exc.salvage], key=lambda run: run[0])


def active_runs(runs: list[tuple[Path, dict]], owner: str) -> int:
    return sum(1 for _, state in runs if state["owner"] == owner and state["state"] in ACTIVE)


def queued_in_order(runs: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    queued = [(path, state) for path, state in runs if state["state"] == "queued"]
    return sorted(queued, key=lambda run: (run[1]["queued_at"], run[0].name))


@contextmanager
def locked():
    """The store's lock: every change of a state.json happens under it, in any process."""
    lock = FileLock(data_dir() / "jobs.lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise JobError(f"the job store is busy: could not lock {lock.lock_file} within {LOCK_TIMEOUT_S:g} s") from None
    try:
        yield
    finally:
        lock.release()
