"""Background fits: each one a runner process (``python -m reflect_core.analysis.fit_runs.runner
RUN_DIR``) over a run directory in its owner's folder, ``data_dir()/fits/<user>/<run_id>/``.

A fit run directory has the run store's files (``jobs.runfiles``): ``spec.json`` (the
``FitRequest``), ``state.json`` (the same fields and checks as a training run's, changed only
under the store's lock), ``progress.json`` and ``log.txt`` (the worker's ``FileReporter``),
``control.json`` (stop), ``worker.out``; plus ``data/curve_K.csv`` (each dataset, canonical form,
copied at submit so that the fit never reads outside its folder) and ``fit.json`` (the result).

Why not a job kind of the run store: the job store sits below ``analysis`` in the wings, so its
worker could not run a fit. The runner reuses the store's pieces instead (its state file and lock,
the worker's reporter, control, heartbeat and outcome recording, the local backend's processes).
There is no queue: a fit starts at once or is refused (``ACTIVE_FITS`` per user). Liveness is
checked whenever a page reads the runs (``refresh``): a runner whose process is gone, or whose
heartbeat is older than ``jobs.heartbeat_timeout_s()``, fails with that reason.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from reflect_core.accounts.access import User, validate_username
from reflect_core.accounts.limits import Limits
from reflect_core.analysis.fit.budget import check_fit_size
from reflect_core.base.errors import InvalidInput, LimitError, NotFound
from reflect_core.base.storage import StorageError, atomic_write_bytes, atomic_write_json, data_dir, read_json
from reflect_core.formats.curves import Curve, canonical_text, parse_canonical
from reflect_core.jobs import backends
from reflect_core.jobs.queries import Progress
from reflect_core.jobs.runfiles import (
    CONTROL,
    PROGRESS,
    SPEC,
    DamagedRun,
    JobError,
    append_log,
    check_run_id,
    end_attempt,
    heartbeat_timeout_s,
    load_state,
    locked,
    read_state,
    remove,
    write_state,
)
from reflect_core.jobs.store import new_run_id

from .request import FitRequest, active_fit_limit

RUNNER = "reflect_core.analysis.fit_runs.runner"
FIT_JSON = "fit.json"
DATA = "data"
KEEP_FINISHED = 20  # a user's finished fits kept; older ones go when a new one starts (Save keeps a copy)


class FitRunNotFound(JobError, NotFound):
    """No such fit run of this user."""


def curve_file(k: int) -> str:
    return f"{DATA}/curve_{k}.csv"


def fits_root() -> Path:
    path = data_dir() / "fits"
    path.mkdir(exist_ok=True)
    return path


def user_folder(owner: str) -> Path:
    """``fits/<owner>/``: the only folder a user's fits are read from or written to."""
    path = fits_root() / validate_username(owner)
    path.mkdir(exist_ok=True)
    return path


def inside(folder: Path, path: Path) -> Path:
    """``path`` resolved; ``InvalidInput`` unless it lies strictly inside ``folder`` (links followed)."""
    resolved, root = path.resolve(), folder.resolve()
    if root not in resolved.parents:
        raise InvalidInput(f"{path.name} is not inside its owner's folder")
    return resolved


def fit_dir(user: User, run_id: str) -> Path:
    """The directory of one of ``user``'s fits; ``FitRunNotFound`` when there is none."""
    folder = user_folder(user.name)
    path = inside(folder, folder / check_run_id(run_id))
    if not (path / "state.json").is_file():
        raise FitRunNotFound(f"{user.name} has no fit {run_id}")
    return path


@dataclass(frozen=True)
class FitRun:
    run_id: str
    owner: str
    name: str | None
    state: str  # running, stopped, failed, completed (or jobs.DAMAGED)
    created: float
    started: float | None
    ended: float | None
    error: str | None
    result: dict | None  # the runner's summary: chi2_reduced, n_points, n_free, search
    requested: str | None  # "stop" sent, not yet acted on
    progress: Progress
    run_dir: Path

    @property
    def actions(self) -> tuple[str, ...]:
        return ("stop",) if self.state == "running" else ("delete",)


def _info(path: Path, state: dict) -> FitRun:
    try:
        progress = Progress.from_dict(read_json(path / PROGRESS) or {})
        control = read_json(path / CONTROL) or {}
    except StorageError:
        progress, control = Progress(), {}
    requested = control.get("action") if state["state"] == "running" and isinstance(control, dict) else None
    return FitRun(run_id=path.name, owner=state["owner"], name=state["name"], state=state["state"],
                  created=state["created"], started=state["started"], ended=state["ended"], error=state["error"],
                  result=state["result"], requested=requested, progress=progress, run_dir=path)


def _damaged(path: Path, exc: DamagedRun) -> FitRun:
    return FitRun(run_id=path.name, owner=path.parent.name, name=exc.salvage.get("name"), state="damaged",
                  created=exc.salvage.get("created") or 0.0, started=None, ended=None, error=str(exc), result=None,
                  requested=None, progress=Progress(), run_dir=path)


# ---- liveness -------------------------------------------------------------------------------------


def _verdict(path: Path, state: dict) -> str | None:
    """Why a running fit's runner counts as dead, or None while it lives. The caller holds the lock."""
    if state["ref"] is None:
        return "the fit runner was never started"
    poll = backends.get("local").poll(state["ref"])
    if not poll.alive:
        return f"the fit runner stopped unexpectedly ({poll.reason})"
    try:
        heartbeat = (read_json(path / PROGRESS) or {}).get("heartbeat") or 0.0
    except StorageError:
        heartbeat = 0.0
    silent = time.time() - max(heartbeat, state["started"] or 0.0)
    if silent > heartbeat_timeout_s():
        return f"the fit runner stopped responding (no heartbeat for {silent:.0f} s)"
    return None


def _refreshed(path: Path, state: dict) -> dict:
    if state["state"] != "running":
        return state
    reason = _verdict(path, state)
    if reason is None:
        return state
    append_log(path, f"fit runs: {reason}")
    return end_attempt(path, state, "failed", error=reason)


def refresh(owner: str) -> None:
    """Fail the owner's running fits whose runner is dead (gone, or silent past the heartbeat timeout)."""
    with locked():
        for path, state in _scan(owner):
            if state is not None:
                _refreshed(path, state)


def _scan(owner: str) -> list[tuple[Path, dict | None]]:
    found = []
    for path in sorted(user_folder(owner).iterdir()):
        if path.is_symlink() or not path.is_dir() or path.name.startswith("."):
            continue
        try:
            state = load_state(path)
        except DamagedRun:
            state = None
        if state is not None or (path / "state.json").exists():
            found.append((path, state))
    return found


# ---- reads ------------------------------------------------------------------------------------------


def list_fits(user: User) -> list[FitRun]:
    """The user's fits, newest first, each checked for a dead runner first."""
    refresh(user.name)
    runs = []
    for path, _ in _scan(user.name):
        try:
            state = load_state(path)
        except DamagedRun as exc:
            runs.append(_damaged(path, exc))
            continue
        if state is not None:
            runs.append(_info(path, state))
    return sorted(runs, key=lambda run: run.run_id, reverse=True)


def get(user: User, run_id: str) -> FitRun:
    path = fit_dir(user, run_id)
    with locked():
        try:
            state = _refreshed(path, read_state(path))
        except DamagedRun as exc:
            return _damaged(path, exc)
    return _info(path, state)


def request_of(run: FitRun) -> FitRequest:
    return FitRequest.parse(read_json(run.run_dir / SPEC), check_config=False)


def curves_of(run: FitRun) -> list[Curve]:
    """The datasets as the fit read them (the copies in its folder)."""
    names = request_of(run).curves
    return [parse_canonical(inside(run.run_dir, run.run_dir / curve_file(k)).read_bytes(), name)
            for k, name in enumerate(names)]


def result_json(run: FitRun) -> dict:
    """The completed fit's ``fit.json``; ``NotFound`` when it has none."""
    data = read_json(inside(run.run_dir, run.run_dir / FIT_JSON))
    if not isinstance(data, dict):
        raise NotFound(f"fit {run.run_id} has no result")
    return data


# ---- actions --------------------------------------------------------------------------------------


def submit(user: User, raw: dict, curves: list[Curve], name: str | None = None, limits: Limits | None = None,
           run_id: str | None = None) -> str:
    """Start a fit of ``curves`` (in the order of the request's names) now, in a runner process;
    its run id. The request is checked (its configuration too), and the user's running fits
    against ``ACTIVE_FITS`` under the store's lock."""
    request = FitRequest.parse(raw, limits)
    if len(curves) != len(request.curves):
        raise InvalidInput(f"the request names {len(request.curves)} datasets but {len(curves)} were given")
    check_fit_size(request.fit_config().n_free, request.mcmc_steps, curves)
    texts = [canonical_text(curve).encode() for curve in curves]
    owner = validate_username(user.name)
    with locked():
        running = sum(state is not None and _refreshed(path, state)["state"] == "running"
                      for path, state in _scan(owner))
        allowed = active_fit_limit(limits)
        if running >= allowed:
            raise LimitError(f"{running} fit(s) of yours are running; at most {allowed} may run at once: "
                             f"stop one or wait for it to end")
        path = user_folder(owner) / check_run_id(run_id or new_run_id())
        try:
            path.mkdir()
        except FileExistsError:
            raise JobError(f"fit {path.name} already exists") from None
        (path / DATA).mkdir()
        for k, text in enumerate(texts):
            atomic_write_bytes(path / curve_file(k), text)
        atomic_write_json(path / SPEC, request.to_dict())
        now = time.time()
        state = write_state(path, {
            "run_id": path.name, "owner": owner, "name": name, "state": "running", "created": now, "started": now,
            "ended": None, "backend": "local", "ref": None, "attempts": 1, "error": None, "result": None})
        try:
            ref = backends.get("local").spawn(path, RUNNER)
        except JobError as exc:
            end_attempt(path, state, "failed", error=str(exc))
            raise
        write_state(path, state, ref=ref)  # under the lock: the runner's claim waits for it
    _prune(owner)
    return path.name


def stop(user: User, run_id: str) -> None:
    """Ask the runner to stop (it ends at its next step); the fit becomes stopped when it has."""
    path = fit_dir(user, run_id)
    with locked():
        state = _refreshed(path, read_state(path))
        if state["state"] != "running":
            raise JobError(f"cannot stop fit {run_id}: it is {state['state']}")
        atomic_write_json(path / CONTROL, {"action": "stop", "requested": time.time()})


def delete(user: User, run_id: str) -> None:
    """Remove a fit that is not running, with its files."""
    path = fit_dir(user, run_id)
    with locked():
        try:
            state = _refreshed(path, read_state(path))
        except DamagedRun:
            state = None
        if state is not None and state["state"] == "running":
            raise JobError(f"cannot delete fit {run_id}: it is running (stop it first)")
        trash = path.with_name(f".deleting-{run_id}-{secrets.token_hex(2)}")
        path.rename(trash)
    remove(trash)


def _prune(owner: str) -> None:
    """Only the newest KEEP_FINISHED finished fits are kept (saved ones live on in the history)."""
    finished = [path for path, state in _scan(owner) if state is None or state["state"] != "running"]
    for path in finished[:-KEEP_FINISHED] if len(finished) > KEEP_FINISHED else []:
        try:
            delete(User(owner), path.name)
        except (JobError, OSError):
            continue
