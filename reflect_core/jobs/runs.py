"""Background jobs on this machine (DESIGN.md, Jobs): a store of runs under
``data_dir()/runs/<run_id>/`` and a scheduler that starts worker processes.

Files of a run (JSON written atomically, see ``storage``):

- ``spec.json``: the job spec, written once by ``submit``.
- ``state.json``: owner, name, state, times, worker pid, attempts, error,
  result. Changed only under the store's lock (``jobs.lock``).
- ``progress.json``: written by the worker only: phase, done/total, epoch,
  losses per epoch, the last log lines and a heartbeat time.
- ``control.json``: a request to the running worker, ``{"action": "pause"|"stop"}``.
- ``log.txt`` (the full log, kept across attempts), ``worker.out`` (the worker's
  stdout and stderr), and whatever the pipeline writes: ``data/``,
  ``checkpoint.pt``, ``model/``.

Workers are separate processes in their own session, so they outlive page
reruns, closed browsers and a restarted Streamlit server; anyone can re-attach
by reading the files. ``tick`` is the whole scheduler: the UI calls it on every
poll and each worker calls it when it ends, so the queue advances with no
browser open.

Settings (environment): ``REFLECT_DATA_DIR``, ``REFLECT_MAX_CONCURRENT`` (jobs
running at once, default 1) and ``REFLECT_HEARTBEAT_TIMEOUT`` (seconds without a
heartbeat before a running job counts as failed, default 20). Workers inherit them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from reflect_core.accounts.access import LOCAL_USER, User, check_owner
from reflect_core.base.storage import StorageError, atomic_write_json, data_dir, read_json
from reflect_core.base.errors import ReflectError
from reflect_core.ml.spec import TrainSpec

STATES = ("queued", "running", "paused", "stopped", "failed", "completed", "cancelled")
HEARTBEAT_TIMEOUT_S = 20.0  # env REFLECT_HEARTBEAT_TIMEOUT overrides it
MAX_CONCURRENT = 1  # env REFLECT_MAX_CONCURRENT overrides it
LOCK_TIMEOUT_S = 30.0

SPEC, STATE, PROGRESS, CONTROL, LOG = "spec.json", "state.json", "progress.json", "control.json", "log.txt"
WORKER_OUT, CHECKPOINT = "worker.out", "checkpoint.pt"
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

_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]*")
_REPO_ROOT = Path(__file__).resolve().parents[1]
# Workers this process started, kept so that polling them reaps them (waitpid with
# WNOHANG): an exited child that is never reaped stays a zombie that looks alive.
_children: dict[int, subprocess.Popen] = {}


class JobError(ReflectError):
    """A refused or impossible job operation; the message names the run and its state."""


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
    pid: int | None  # the worker of the latest attempt
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


# ---- settings -----------------------------------------------------------------


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


# ---- paths and files --------------------------------------------------------------


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(exist_ok=True)
    return path


def run_dir(run_id: str) -> Path:
    """The directory of an existing run."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise JobError(f"{run_id!r} is not a run id")
    path = runs_dir() / run_id
    if not (path / STATE).is_file():
        raise JobError(f"no run {run_id} in {runs_dir()}")
    return path


def _read_state(path: Path) -> dict:
    state = read_json(path / STATE)
    if state is None:
        raise JobError(f"run {path.name} was deleted")
    return state


def _write_state(path: Path, current: dict, /, **changes) -> dict:
    new = {**current, **changes}
    atomic_write_json(path / STATE, new)
    return new


def _append_log(path: Path, message: str) -> None:
    with open(path / LOG, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _all_runs() -> list[tuple[Path, dict]]:
    """(run directory, state) of every run, oldest first. Reads need no lock: files are replaced atomically."""
    runs = []
    for path in sorted(runs_dir().iterdir()):
        state = read_json(path / STATE) if path.is_dir() and not path.name.startswith(".") else None
        if state is not None:  # a run being created or deleted has none
            runs.append((path, state))
    return runs


@contextmanager
def _locked():
    lock = FileLock(data_dir() / "jobs.lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise JobError(f"the job store is busy: could not lock {lock.lock_file} within {LOCK_TIMEOUT_S:g} s") from None
    try:
        yield
    finally:
        lock.release()


# ---- transitions ----------------------------------------------------------------


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
    with _locked():
        path = run_dir(run_id)
        state = _read_state(path)
        check_owner(user, state["owner"], f"run {run_id}")
        if not _allows(action, state, path):
            raise JobError(_refusal(action, run_id, state["state"]))
        yield path, state


def _new_run_id() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}-{int(now * 1e6) % 1_000_000:06d}-{secrets.token_hex(2)}"


def _queue(path: Path, state: dict) -> None:
    _write_state(path, state, state="queued", queued_at=time.time(), ended=None, error=None)


def submit(spec: TrainSpec, owner: str, name: str | None = None) -> str:
    """Queue a job; it starts at once when a slot is free. Returns the run id."""
    if not isinstance(spec, TrainSpec):
        raise JobError(f"a job needs a TrainSpec (parse it at the boundary), got {type(spec).__name__}")
    if not isinstance(owner, str) or not owner:
        raise JobError("a job needs an owner (a non-empty user name)")
    with _locked():
        run_id = _new_run_id()
        path = runs_dir() / run_id
        path.mkdir()
        try:
            atomic_write_json(path / SPEC, spec.to_dict())
        except (TypeError, ValueError) as exc:
            shutil.rmtree(path)
            raise JobError(f"the job spec cannot be saved as JSON: {exc}") from None
        now = time.time()
        _write_state(path, {
            "run_id": run_id, "owner": owner, "name": name, "state": "queued", "created": now,
            "queued_at": now, "started": None, "ended": None, "pid": None, "attempts": 0,
            "error": None, "result": None,
        })
        _schedule(max_concurrent_jobs())
    return run_id


def cancel(run_id: str, user: User = LOCAL_USER) -> None:
    with _transition(run_id, "cancel", user) as (path, state):
        _write_state(path, state, state="cancelled", ended=time.time())


def _request(run_id: str, action: str, user: User) -> None:
    with _transition(run_id, action, user) as (path, _):
        atomic_write_json(path / CONTROL, {"action": action, "requested": time.time()})


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
        _schedule(max_concurrent_jobs())


def retry(run_id: str, user: User = LOCAL_USER) -> None:
    """Queue the run again from the start, in the same directory, reusing its generated ``data/``."""
    with _transition(run_id, "retry", user) as (path, state):
        for entry in path.iterdir():
            if entry.name not in KEPT_ON_RETRY:
                _remove(entry)
        _append_log(path, "retry: starting again from the beginning (generated data is kept)")
        _queue(path, {**state, "result": None})
        _schedule(max_concurrent_jobs())


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


# ---- reading ---------------------------------------------------------------------


def _queue_positions(runs: list[tuple[Path, dict]]) -> dict[str, int]:
    return {path.name: i + 1 for i, (path, _) in enumerate(_queued_in_order(runs))}


def _queued_in_order(runs: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    queued = [(path, state) for path, state in runs if state["state"] == "queued"]
    return sorted(queued, key=lambda run: (run[1]["queued_at"], run[0].name))


def _pending_request(path: Path, state: dict) -> str | None:
    if state["state"] != "running":
        return None
    return (read_json(path / CONTROL) or {}).get("action")


def _info(path: Path, state: dict, queue_position: int | None) -> RunInfo:
    return RunInfo(
        run_id=path.name, owner=state["owner"], name=state["name"], state=state["state"],
        created=state["created"], started=state["started"], ended=state["ended"],
        attempts=state["attempts"], pid=state["pid"], error=state["error"], result=state["result"],
        queue_position=queue_position, requested=_pending_request(path, state),
        actions=tuple(action for action in ALLOWED_FROM if _allows(action, state, path)),
        progress=Progress.from_dict(read_json(path / PROGRESS) or {}), run_dir=path,
    )


def get(run_id: str, user: User = LOCAL_USER) -> RunInfo:
    path = run_dir(run_id)
    runs = _all_runs()
    state = next((state for p, state in runs if p.name == run_id), None)
    if state is None:
        raise JobError(f"run {run_id} was deleted")
    check_owner(user, state["owner"], f"run {run_id}")
    return _info(path, state, _queue_positions(runs).get(run_id))


def list_runs(owner: str | None = None) -> list[RunInfo]:
    """Runs, newest first; only ``owner``'s when given."""
    runs = _all_runs()
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


# ---- scheduler -------------------------------------------------------------------


def tick(max_concurrent: int | None = None) -> None:
    """Mark runs whose worker died as failed, then start queued runs in order
    while fewer than ``max_concurrent`` (default: ``max_concurrent_jobs()``) run."""
    with _locked():
        _schedule(max_concurrent_jobs() if max_concurrent is None else max_concurrent)


def _schedule(max_concurrent: int) -> None:
    """``tick``'s work; the caller holds the lock."""
    runs = [(path, _fail_if_dead(path, state)) for path, state in _all_runs()]
    running = sum(state["state"] == "running" for _, state in runs)
    for path, state in _queued_in_order(runs)[: max(0, max_concurrent - running)]:
        _launch(path, state)
    _reap_exited_children()


def _reap_exited_children() -> None:
    """Workers that ended normally must still be waited for, or they linger as zombies."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def _fail_if_dead(path: Path, state: dict) -> dict:
    reason = _dead_worker_reason(path, state) if state["state"] == "running" else None
    if reason is None:
        return state
    _append_log(path, f"scheduler: {reason}")
    return _write_state(path, state, state="failed", ended=time.time(), error=reason)


def _dead_worker_reason(path: Path, state: dict) -> str | None:
    ended = _worker_exit(state["pid"])
    if ended is not None:
        return f"worker process exited unexpectedly{ended}"
    heartbeat = (read_json(path / PROGRESS) or {}).get("heartbeat") or 0.0
    silent = time.time() - max(heartbeat, state["started"])  # a new worker has had no time to beat yet
    if silent > heartbeat_timeout_s():
        return f"worker stopped responding (no heartbeat for {silent:.0f} s)"
    return None


def _worker_exit(pid: int) -> str | None:
    """None while the process runs; otherwise how it ended, as far as this process can tell."""
    child = _children.get(pid)
    if child is not None:
        code = child.poll()
        if code is None:
            return None
        del _children[pid]
        return f" (killed by {signal.Signals(-code).name})" if code < 0 else f" (exit status {code})"
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid now belongs to another user
        return ""
    return "" if _is_zombie(pid) else None


def _is_zombie(pid: int) -> bool:
    """An exited process whose parent has not reaped it still answers kill(pid, 0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _launch(path: Path, state: dict) -> None:
    _remove(path / CONTROL)  # a request meant for an earlier attempt
    env = {**os.environ, "REFLECT_DATA_DIR": str(data_dir().resolve())}
    command = [sys.executable, "-m", "reflect_core.jobs.worker", str(path.resolve())]
    try:
        with open(path / WORKER_OUT, "ab") as out:
            child = subprocess.Popen(command, cwd=_REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        _write_state(path, state, state="failed", ended=time.time(), error=f"could not start a worker: {exc}")
        return
    _children[child.pid] = child
    _write_state(path, state, state="running", pid=child.pid, started=time.time(), ended=None, error=None,
                 attempts=state["attempts"] + 1)


# ---- the worker's side -------------------------------------------------------------


def claim(path: Path) -> Claim:
    """Called by the worker that ``tick`` launched for this run directory."""
    if path.resolve().parent != runs_dir().resolve():
        raise JobError(f"{path} is not a run directory in {runs_dir()} (is REFLECT_DATA_DIR the same?)")
    with _locked():
        state = _read_state(path)
        if state["state"] != "running" or state["pid"] != os.getpid():
            raise JobError(f"run {path.name} is {state['state']} and not waiting for worker {os.getpid()}")
    spec = read_json(path / SPEC)
    return Claim(run_id=path.name, run_dir=path, attempt=state["attempts"], spec=spec)


def _owned_by(claimed: Claim, state: dict | None) -> bool:
    return bool(state) and state["state"] == "running" and state["attempts"] == claimed.attempt


def is_current(claimed: Claim) -> bool:
    """False once the scheduler gave up on this attempt (or the run is gone): its worker must exit."""
    try:
        return _owned_by(claimed, read_json(claimed.run_dir / STATE))
    except StorageError:
        return True  # unreadable is not a verdict


def finish(claimed: Claim, outcome: str, error: str | None = None, result: dict | None = None) -> bool:
    """Record how the worker's attempt ended (completed, paused, stopped or failed).
    False when the scheduler had already given up on this attempt, so nothing was recorded."""
    with _locked():
        state = read_json(claimed.run_dir / STATE)
        if not _owned_by(claimed, state):
            return False
        _remove(claimed.run_dir / CONTROL)
        _write_state(claimed.run_dir, state, state=outcome, ended=time.time(), error=error, result=result)
        return True
