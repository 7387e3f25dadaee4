"""What users and pages read of the run store: each run's state, progress and allowed actions.

Reads take no lock and touch only local files, so a page can poll them as often as it likes.
A run whose state.json is damaged is listed as ``damaged`` with its error (to its owner as far
as the file still tells, and to admins), can be deleted, and never hides the other runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reflect_core.accounts.access import LOCAL_USER, AccessError, User, check_owner
from reflect_core.base.storage import StorageError, read_json
from reflect_core.jobs.runfiles import (
    ALLOWED_FROM,
    CONTROL,
    DAMAGED,
    PROGRESS,
    DamagedRun,
    RunNotFound,
    active_runs,
    allows,
    queued_in_order,
    run_dir,
    scan_runs,
    usable_runs,
)


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
        """The fields of ``data`` that have their type (a damaged file gives defaults, not a crash)."""
        kinds = {"phase": str, "train_loss": list, "val_loss": list, "log_tail": list, "heartbeat": (int, float)}
        return cls(**{name: data[name] for name in cls.__dataclass_fields__
                      if name in data and isinstance(data[name], kinds.get(name, int))
                      and not isinstance(data[name], bool)})


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
    compute_s: float | None = None  # seconds of the attempts that ended (None: a run from before it was kept)
    attempt_start: dict | None = None  # {"phase", "done"} the latest attempt started from
    estimate_s: float | None = None  # the training time estimated at submission, for all its epochs

    def compute_seconds(self, now: float) -> float:
        """Seconds of work over every attempt (a resume does not start the count again)."""
        running = now - self.started if self.state == "running" and self.started else 0.0
        if self.compute_s is None:  # only the latest attempt is known
            return running or ((self.ended - self.started) if self.ended and self.started else 0.0)
        return self.compute_s + running

    def seconds_left(self, now: float) -> float | None:
        """The current phase's time left at this attempt's own speed (work done before a pause is not
        counted as done in this attempt's time); None until it has done some."""
        p, start = self.progress, self.attempt_start or {}
        if self.state != "running" or not self.started or not p.total or p.done >= p.total:
            return None
        before = start.get("done", 0) if start.get("phase") == p.phase else 0
        done_here = p.done - min(before, p.done)
        return (now - self.started) / done_here * (p.total - p.done) if done_here > 0 else None


def _queue_positions(runs: list[tuple[Path, dict]]) -> dict[str, int]:
    return {path.name: i + 1 for i, (path, _) in enumerate(queued_in_order(runs))}


def _read_object(path: Path) -> dict:
    """A JSON object written beside the state (progress, control), or {} when it is missing or
    unusable: a damaged side file never hides the run."""
    try:
        data = read_json(path)
    except StorageError:
        return {}
    return data if isinstance(data, dict) else {}


def _pending_request(path: Path, state: dict) -> str | None:
    if state["state"] != "running":
        return None
    action = _read_object(path / CONTROL).get("action")
    return action if action in ("pause", "stop") else None


def _info(path: Path, state: dict, queue_position: int | None) -> RunInfo:
    ref = state["ref"]
    return RunInfo(
        run_id=path.name, owner=state["owner"], name=state["name"], state=state["state"],
        created=state["created"], started=state["started"], ended=state["ended"], attempts=state["attempts"],
        backend=state["backend"], ref=ref,
        pid=int(ref) if state["backend"] == "local" and ref and ref.isdigit() else None,
        error=state["error"], result=state["result"],
        queue_position=queue_position, requested=_pending_request(path, state),
        actions=tuple(action for action in ALLOWED_FROM if allows(action, state, path)),
        progress=Progress.from_dict(_read_object(path / PROGRESS)), run_dir=path,
        compute_s=state.get("compute_s"), attempt_start=state.get("attempt_start"),
        estimate_s=state.get("estimate_s"),
    )


def _damaged_info(path: Path, damage: DamagedRun) -> RunInfo:
    """A run whose state.json cannot be used: listed with its error, and only deletable."""
    salvage = damage.salvage
    try:
        created = salvage.get("created") or path.stat().st_mtime
    except OSError:
        created = 0.0
    return RunInfo(
        run_id=path.name, owner=salvage.get("owner", ""), name=salvage.get("name"), state=DAMAGED,
        created=created, started=None, ended=None, attempts=0, backend="", ref=None, pid=None,
        error=str(damage), result=None, queue_position=None, requested=None, actions=("delete",),
        progress=Progress(), run_dir=path,
    )


def get(run_id: str, user: User = LOCAL_USER) -> RunInfo:
    path = run_dir(run_id)
    runs, damaged = scan_runs()
    state = next((state for p, state in runs if p.name == run_id), None)
    if state is None:
        damage = next((exc for p, exc in damaged if p.name == run_id), None)
        if damage is None:
            raise RunNotFound(f"run {run_id} was deleted")
        info = _damaged_info(path, damage)
        if not info.owner and not user.is_admin:
            raise AccessError(f"run {run_id} is not yours (signed in as {user.name!r})")
        check_owner(user, info.owner or user.name, f"run {run_id}")
        return info
    check_owner(user, state["owner"], f"run {run_id}")
    return _info(path, state, _queue_positions(runs).get(run_id))


def list_runs(owner: str | None = None) -> list[RunInfo]:
    """Runs, newest first; only ``owner``'s when given. A damaged run is listed as ``damaged``
    with its error (to its owner when its state.json still names one, and to admins)."""
    runs, damaged = scan_runs()
    positions = _queue_positions(runs)
    infos = [_info(path, state, positions.get(path.name)) for path, state in runs]
    infos += [_damaged_info(path, damage) for path, damage in damaged]
    infos.sort(key=lambda info: info.run_id, reverse=True)  # run ids start with their UTC time
    return [info for info in infos if owner is None or info.owner == owner]


def runs_for(user: User) -> list[RunInfo]:
    """What ``user`` may see: their own runs, or every run for an admin."""
    return list_runs(None if user.is_admin else user.name)


def active_count(owner: str) -> int:
    """Queued or running jobs of one user (what the concurrent-jobs limit counts)."""
    return active_runs(usable_runs(), owner)
