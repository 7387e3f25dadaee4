"""How a long task talks to whoever runs it: progress out, pause/stop requests in.

The same training code runs under the CLI (no-op reporter, never interrupted),
in a local worker process and in a Modal container; only these two objects differ.
"""

from __future__ import annotations

import time
from typing import Protocol


class Paused(Exception):
    """Raised by a task after it wrote a checkpoint because a pause was requested."""


class Stopped(Exception):
    """Raised by a task that ended early, without a checkpoint, because a stop was requested."""


class Reporter(Protocol):
    def phase(self, name: str, done: int = 0, total: int = 0) -> None: ...

    def log(self, message: str) -> None: ...

    def epoch(self, epoch: int, total: int, train_loss: float, val_loss: float) -> None: ...


class Control(Protocol):
    def requested(self) -> str | None:
        """None, "pause" or "stop"."""
        ...


class PrintReporter:
    """For the command line: one line per phase change, epoch and log message."""

    def __init__(self, stream=None):
        import sys

        self.stream = stream or sys.stderr
        self._last_phase = None
        self._t0 = time.monotonic()

    def _print(self, text: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f} s] {text}", file=self.stream, flush=True)

    def phase(self, name: str, done: int = 0, total: int = 0) -> None:
        if name != self._last_phase or (total and done == total):
            self._print(f"{name} {done}/{total}" if total else name)
            self._last_phase = name

    def log(self, message: str) -> None:
        self._print(message)

    def epoch(self, epoch: int, total: int, train_loss: float, val_loss: float) -> None:
        self._print(f"epoch {epoch}/{total}: train {train_loss:.4g}, validation {val_loss:.4g}")


class NeverInterrupt:
    def requested(self) -> str | None:
        return None
