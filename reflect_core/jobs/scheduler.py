"""The scheduler: the only code that ends a run on liveness, and the queue.

``tick`` is the whole of it. Pages call it on every poll and each local worker calls
it when it ends, so the queue advances with no browser open. Each tick, under the
store's lock:

1. Every running run whose backend this process has is checked. A local worker is
   polled every tick (``kill(pid, 0)``: cheap) and must have beaten its heartbeat
   within ``REFLECT_HEARTBEAT_TIMEOUT`` seconds. A remote worker is polled at most
   once every ``backend.poll_interval_s`` seconds, however many pages, tabs and
   processes tick: the time of the last poll is kept in its ``state.json``
   (``polled_at``) and stamped before the poll, under the lock, so one ticker polls
   and the others skip it. Its liveness is the backend's word; it fails when the
   backend says it is gone, when its heartbeat (once it has one) or any successful
   poll is overdue by more than the timeout plus one poll interval.
2. Queued runs start in order while fewer than ``max_concurrent`` run.

Remote polls are network calls, so they happen outside the lock; their results are
applied under it afterwards, only if the run is still on the same attempt.
"""

from __future__ import annotations

import time
from pathlib import Path

from reflect_core.base.storage import StorageError, atomic_write_json, read_json
from reflect_core.jobs import backends
from reflect_core.jobs.backends import Backend, BackendUnavailable, Poll
from reflect_core.jobs.runfiles import (
    CONTROL,
    PROGRESS,
    SPEC,
    DamagedRun,
    JobError,
    append_log,
    end_attempt,
    heartbeat_timeout_s,
    load_state,
    locked,
    max_concurrent_jobs,
    queued_in_order,
    remove,
    usable_runs,
    write_state,
)
from reflect_core.ml.spec import SpecError, TrainSpec

_Due = tuple[Path, dict, Backend]


def tick(max_concurrent: int | None = None) -> None:
    """End runs whose worker is gone or silent, then start queued runs in order while fewer
    than ``max_concurrent`` (default: ``max_concurrent_jobs()``) run."""
    limit = max_concurrent_jobs() if max_concurrent is None else max_concurrent
    due: list[_Due] = []
    with locked():
        schedule(limit, due)
    if not due:
        return
    polled = [(path, state, backend, _ask(backend, state["ref"])) for path, state, backend in due]
    with locked():
        for path, state, backend, poll in polled:
            try:
                current = load_state(path)
            except DamagedRun:
                continue  # damaged since: listed as such, never acted on
            if current is not None and _same_attempt(current, state):
                _record(path, current, backend, poll)
        schedule(limit)  # slots that just freed


def schedule(max_concurrent: int, due: list[_Due] | None = None) -> None:
    """``tick``'s work under the lock (the caller holds it). Remote runs due for a poll are
    stamped and appended to ``due`` for the caller to poll; with ``due`` None none are."""
    runs = []
    for path, state in usable_runs():  # a damaged run is skipped: the others keep running
        if state["state"] == "running" and backends.is_registered(state["backend"]):
            state = _check(path, state, backends.get(state["backend"]), due)
        runs.append((path, state))
    running = sum(state["state"] == "running" for _, state in runs)
    for path, state in queued_in_order(runs):
        if running >= max_concurrent:
            break
        running += _launch(path, state)
    for backend in backends.registered():
        backend.tidy()


def _same_attempt(current: dict, polled: dict) -> bool:
    same = (current["ref"], current["attempts"]) == (polled["ref"], polled["attempts"])
    return same and current["state"] == "running"


def _ask(backend: Backend, ref: str) -> Poll | BackendUnavailable:
    """The backend's poll; a passing failure is returned, any other exception means the worker is lost."""
    try:
        poll = backend.poll(ref)
    except BackendUnavailable as exc:
        return exc
    except Exception as exc:
        return Poll.gone(f"lost the {backend.name} worker {ref}: {type(exc).__name__}: {exc}")
    if not isinstance(poll, Poll):
        return Poll.gone(f"the {backend.name} backend answered a poll of {ref} with {type(poll).__name__}, not a Poll")
    return poll


def _check(path: Path, state: dict, backend: Backend, due: list[_Due] | None) -> dict:
    if state["ref"] is None:
        return _give_up(path, state, backend, "the worker has no ref (its launch was not recorded)")
    if not backend.remote:
        state = _record(path, state, backend, _ask(backend, state["ref"]))
    elif due is not None and time.time() - (state.get("polled_at") or 0.0) >= backend.poll_interval_s:
        state = write_state(path, state, polled_at=time.time())
        due.append((path, state, backend))
        return state  # judged after this poll, with what it brings
    if state["state"] != "running":
        return state
    reason = _overdue(path, state, backend)
    return state if reason is None else _give_up(path, state, backend, reason)


def _record(path: Path, state: dict, backend: Backend, poll: Poll | BackendUnavailable) -> dict:
    """Apply what a poll found; the caller holds the lock and has checked the attempt."""
    if isinstance(poll, BackendUnavailable):
        return write_state(path, state, poll_error=str(poll))
    if poll.progress is not None:
        atomic_write_json(path / PROGRESS, poll.progress)
    if poll.alive:
        return write_state(path, state, alive_at=time.time(), poll_error=None) if backend.remote else state
    if poll.outcome is None:
        return _give_up(path, state, backend, poll.reason or f"the {backend.name} worker is gone")
    append_log(path, f"scheduler: the {backend.name} worker reported {poll.outcome}"
               + (f": {poll.error}" if poll.error else ""))
    return end_attempt(path, state, poll.outcome, error=poll.error, result=poll.result)


def _overdue(path: Path, state: dict, backend: Backend) -> str | None:
    """Why a running worker counts as lost on time alone, or None."""
    now, timeout = time.time(), heartbeat_timeout_s()
    heartbeat = (read_json(path / PROGRESS) or {}).get("heartbeat") or 0.0
    if not backend.remote:
        silent = now - max(heartbeat, state["started"])  # a new worker has had no time to beat yet
        return f"worker stopped responding (no heartbeat for {silent:.0f} s)" if silent > timeout else None
    timeout += backend.poll_interval_s  # what it sent can be a poll interval old
    last_poll_error = f" (last poll: {state['poll_error']})" if state.get("poll_error") else ""
    unheard = now - max(state.get("alive_at") or 0.0, state["started"])
    if unheard > timeout:
        return f"lost contact with the {backend.name} worker (no answer for {unheard:.0f} s){last_poll_error}"
    if heartbeat >= state["started"] and now - heartbeat > timeout:  # only once it has beaten in this attempt
        return f"worker stopped responding (no heartbeat for {now - heartbeat:.0f} s){last_poll_error}"
    return None


def _give_up(path: Path, state: dict, backend: Backend, reason: str) -> dict:
    append_log(path, f"scheduler: {reason}")
    if backend.remote and state["ref"] is not None:  # a local worker sees state.json and exits by itself
        try:
            backend.kill(state["ref"])
        except Exception as exc:  # it may be gone already; the run fails either way
            append_log(path, f"scheduler: could not kill the {backend.name} worker {state['ref']}: {exc}")
    return end_attempt(path, state, "failed", error=reason)


def _progress_now(path: Path) -> dict:
    """Where the run's progress stands (phase and work done) as an attempt starts; a resumed worker
    continues from there."""
    try:
        progress = read_json(path / PROGRESS) or {}
    except StorageError:
        progress = {}
    done = progress.get("done") if isinstance(progress, dict) else None
    phase = progress.get("phase") if isinstance(progress, dict) else None
    return {"phase": phase if isinstance(phase, str) else "",
            "done": done if isinstance(done, int) and not isinstance(done, bool) else 0}


def _launch(path: Path, state: dict) -> bool:
    """Start the run's next attempt; False when it did not start (or its backend is not in this process)."""
    if not backends.is_registered(state["backend"]):
        return False
    backend = backends.get(state["backend"])
    remove(path / CONTROL)  # a request meant for an earlier attempt
    try:
        # Bound to the run's owner: arrays outside their folder fail the run here, before a worker.
        ref = backend.launch(path, TrainSpec.parse(read_json(path / SPEC)).check_owner(state["owner"]))
    except SpecError as exc:
        error = f"invalid job spec: {exc}"
    except JobError as exc:
        error = str(exc)
    except Exception as exc:
        error = f"could not start a worker on the {backend.name} backend: {type(exc).__name__}: {exc}"
    else:
        now = time.time()
        write_state(path, state, state="running", ref=str(ref), started=now, ended=None, error=None,
                    attempts=state["attempts"] + 1, polled_at=None, alive_at=None, poll_error=None,
                    attempt_start=_progress_now(path))
        return True
    append_log(path, f"scheduler: {error}")
    write_state(path, state, state="failed", ended=time.time(), error=error)
    return False

