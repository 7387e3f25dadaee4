"""The local backend: each attempt is a worker process on this machine
(``python -m reflect_core.jobs.worker RUN_DIR``), in its own session so that it
outlives page reruns, closed browsers and a restarted Streamlit server.

The ref is the worker's pid as text. Liveness is ``kill(pid, 0)``, which is cheap
enough to ask on every tick; a worker that hangs is caught by its heartbeat instead.
Workers this process started are kept so that polling them reaps them: an exited
child that is never waited for stays a zombie that still answers ``kill(pid, 0)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reflect_core.base.storage import data_dir
from reflect_core.jobs.backends.base import Backend, Poll
from reflect_core.jobs.runfiles import WORKER_OUT, JobError
from reflect_core.ml.spec import TrainSpec

_REPO_ROOT = Path(__file__).resolve().parents[3]
KILL_GRACE_S = 5.0  # between SIGTERM (the worker stops at its next batch) and SIGKILL
EXITED = "worker process exited unexpectedly"


class LocalBackend(Backend):
    name = "local"

    def __init__(self):
        self._children: dict[int, subprocess.Popen] = {}

    def launch(self, run_dir: Path, spec: TrainSpec) -> str:
        return self.spawn(run_dir, "reflect_core.jobs.worker")

    def spawn(self, run_dir: Path, module: str) -> str:
        """Start ``python -m module RUN_DIR`` in its own session (stdout and stderr appended to the run's
        ``worker.out``); its pid as text. Other runners of run directories (the fit runner) start here too,
        so that ``poll`` reaps them and ``kill`` ends them like training workers."""
        env = {**os.environ, "REFLECT_DATA_DIR": str(data_dir().resolve())}
        command = [sys.executable, "-m", module, str(run_dir.resolve())]
        try:
            with open(run_dir / WORKER_OUT, "ab") as out:
                child = subprocess.Popen(command, cwd=_REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise JobError(f"could not start a worker: {exc}") from None
        self._children[child.pid] = child
        return str(child.pid)

    def poll(self, ref: str) -> Poll:
        try:
            pid = int(ref)
        except (TypeError, ValueError):
            return Poll.gone(f"the local worker ref {ref!r} is not a process id")
        ended = self._exit(pid)
        return Poll.running() if ended is None else Poll.gone(EXITED + ended)

    def request(self, ref: str, action: str) -> None:
        """Nothing to send: the worker reads control.json, which the store has written."""

    def kill(self, ref: str) -> None:
        """SIGTERM (the worker stops at its next batch, as for Stop), then SIGKILL after a grace period."""
        pid = int(ref)
        for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 1.0)):
            if self._exit(pid) is not None:
                return
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and self._exit(pid) is None:
                time.sleep(0.05)

    def tidy(self) -> None:
        """Workers that ended normally must still be waited for, or they linger as zombies."""
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    def _exit(self, pid: int) -> str | None:
        """None while the process runs; otherwise how it ended, as far as this process can tell."""
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return None
            del self._children[pid]
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
