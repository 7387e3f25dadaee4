"""``python -m reflect_core.jobs.worker RUN_DIR``: run one job that the local backend
launched (``jobs.backends.local``); it claims its run by its pid, the local backend's ref.

Reports progress to ``progress.json`` and ``log.txt``, beats a heartbeat every
second from a thread (also during a long epoch), obeys ``control.json`` (pause,
stop; SIGTERM counts as stop), records the outcome in ``state.json`` and then
calls ``jobs.tick`` so that the next queued job starts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from reflect_core import jobs
from reflect_core.base.job_protocol import Paused, Stopped
from reflect_core.base.storage import StorageError, atomic_write_json, read_json
from reflect_core.ml.spec import TrainSpec

HEARTBEAT_INTERVAL_S = 1.0
PROGRESS_MIN_INTERVAL_S = 0.5  # throttles log and in-phase updates; the heartbeat writes any left over
LOG_TAIL_LINES = 50


def _empty_progress() -> dict:
    return {"phase": "", "done": 0, "total": 0, "epoch": 0, "epochs_total": 0,
            "train_loss": [], "val_loss": [], "log_tail": [], "heartbeat": None}


class FileReporter:
    """``job_protocol.Reporter`` that writes ``progress.json`` and appends to ``log.txt``.

    Thread-safe: the heartbeat thread writes through it too. A resumed run starts
    from the progress of its earlier attempts, so its loss curves continue.
    """

    def __init__(self, run_dir: Path):
        self._progress_path = run_dir / jobs.PROGRESS
        self._log_path = run_dir / jobs.LOG
        self._progress = {**_empty_progress(), **(read_json(self._progress_path) or {})}
        self._lock = threading.Lock()
        self._written_at = 0.0

    def phase(self, name: str, done: int = 0, total: int = 0) -> None:
        with self._lock:
            changed = name != self._progress["phase"]
            self._progress.update(phase=name, done=done, total=total)
            self._save(at_once=changed or bool(total and done >= total))

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"{stamp} {line}" for line in message.splitlines() or [""]]
        with self._lock:
            with open(self._log_path, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
            self._progress["log_tail"] = (self._progress["log_tail"] + lines)[-LOG_TAIL_LINES:]
            self._save(at_once=False)

    def epoch(self, epoch: int, total: int, train_loss: float, val_loss: float) -> None:
        self.log(f"epoch {epoch}/{total}: train {train_loss:.4g}, validation {val_loss:.4g}")
        with self._lock:
            progress = self._progress
            # Epochs count from 1; an epoch repeated after a resume replaces its old value.
            progress["train_loss"] = progress["train_loss"][: epoch - 1] + [float(train_loss)]
            progress["val_loss"] = progress["val_loss"][: epoch - 1] + [float(val_loss)]
            progress.update(epoch=epoch, epochs_total=total)
            self._save(at_once=True)

    def flush(self) -> None:
        """Write progress.json now; this is also the heartbeat."""
        with self._lock:
            self._save(at_once=True)

    def _save(self, at_once: bool) -> None:
        """Write progress.json (every write is also a heartbeat); the caller holds the lock."""
        now = time.monotonic()
        if at_once or now - self._written_at >= PROGRESS_MIN_INTERVAL_S:
            self._progress["heartbeat"] = time.time()
            atomic_write_json(self._progress_path, self._progress)
            self._written_at = now


class FileControl:
    """``job_protocol.Control`` that reads ``control.json``, re-reading it only when it changed."""

    def __init__(self, run_dir: Path):
        self._path = run_dir / jobs.CONTROL
        self._seen = None  # (inode, mtime) of the version last read; a replaced file has a new inode
        self._action = None
        self._forced = None

    def force_stop(self) -> None:
        self._forced = "stop"

    def requested(self) -> str | None:
        if self._forced:
            return self._forced
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        if (st.st_ino, st.st_mtime_ns) != self._seen:
            self._seen = (st.st_ino, st.st_mtime_ns)
            self._action = (read_json(self._path) or {}).get("action")
        return self._action if self._action in ("pause", "stop") else None


class Heartbeat(threading.Thread):
    """Beats every second; exits the process at once if the scheduler gave up on this attempt,
    so that a worker declared dead never writes beside the one that replaces it."""

    def __init__(self, reporter: FileReporter, claimed: jobs.Claim):
        super().__init__(name="heartbeat", daemon=True)
        self._reporter = reporter
        self._claimed = claimed
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(HEARTBEAT_INTERVAL_S):
            if not jobs.is_current(self._claimed):
                print(f"run {self._claimed.run_id}: the scheduler gave up on this attempt; exiting",
                      file=sys.stderr, flush=True)
                os._exit(3)
            try:
                self._reporter.flush()
            except StorageError as exc:  # e.g. a full disk: keep trying, the job may still finish
                print(exc, file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stopping.set()
        self.join()


Work = Callable[[jobs.Claim, FileReporter, FileControl], dict]


def train(claimed: jobs.Claim, reporter: FileReporter, control: FileControl) -> dict:
    """A training job: the result summary that goes into state.json."""
    from reflect_core.ml.pipeline import run_job  # here, so that a pipeline that cannot load fails the job

    # Bound to the run's owner: uploaded arrays resolve inside their own folder only.
    spec = TrainSpec.parse(claimed.spec).check_owner(claimed.owner)
    return run_job(spec, claimed.run_dir, reporter, control)


def run_pipeline(claimed: jobs.Claim, reporter: FileReporter, control: FileControl, work: Work = train) -> dict:
    """The outcome of ``work`` as keyword arguments for ``jobs.finish``."""
    try:
        result = work(claimed, reporter, control)
        json.dumps(result)  # the result summary goes into state.json
    except Paused as exc:
        reporter.log(f"paused: {exc}")
        return {"outcome": "paused"}
    except Stopped as exc:
        reporter.log(f"stopped: {exc}")
        return {"outcome": "stopped"}
    except Exception as exc:
        reporter.log(traceback.format_exc().rstrip())
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}"}
    reporter.log("completed")
    return {"outcome": "completed", "result": result}


WORKER_NICENESS = 10


def _yield_to_pages() -> None:
    """Lower this worker's CPU priority: it still uses every idle cycle, but the server's page reruns
    come first on a shared box (ten sessions beside one training job: bench/bench_load.py)."""
    try:
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):  # no os.nice (Windows) or not permitted: run at normal priority
        pass


def attend(claimed: jobs.Claim, work: Work = train) -> None:
    """Run ``work`` for a claimed run: progress and log to its files, a heartbeat every second,
    pause/stop from control.json (SIGTERM counts as stop), and the outcome into its state.json.
    Also the body of other runners of run directories (``analysis.fit_runs.runner``)."""
    _yield_to_pages()
    reporter = FileReporter(claimed.run_dir)
    control = FileControl(claimed.run_dir)
    # Only a flag: a handler that wrote files could deadlock on the reporter's lock.
    signal.signal(signal.SIGTERM, lambda signum, frame: control.force_stop())
    reporter.log(f"attempt {claimed.attempt} started (worker pid {os.getpid()})")
    heartbeat = Heartbeat(reporter, claimed)
    heartbeat.start()
    outcome = run_pipeline(claimed, reporter, control, work)
    heartbeat.stop()  # before finish: once the state is final, the heartbeat would take the run for lost
    reporter.flush()
    if not jobs.finish(claimed, **outcome):
        print(f"run {claimed.run_id}: the scheduler gave up on this attempt; outcome not recorded", file=sys.stderr)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m reflect_core.jobs.worker RUN_DIR", file=sys.stderr)
        return 2
    try:
        claimed = jobs.claim(Path(sys.argv[1]))
    except (jobs.JobError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    attend(claimed)
    jobs.tick()
    return 0


if __name__ == "__main__":
    sys.exit(main())
