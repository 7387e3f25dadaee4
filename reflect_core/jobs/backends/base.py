"""What the scheduler needs from whatever runs a worker (DESIGN.md, Jobs).

Four calls: ``launch`` a worker for a run and get back an opaque ``ref`` (a pid as text
for the local backend, a function-call id for a remote one); ``poll`` it; forward a
pause/stop ``request``; ``kill`` it. The run's ``state.json`` keeps ``backend`` (the
registry name) and ``ref``, so any process can poll a worker another process launched.

The store and the scheduler never look inside a ref, and a backend never writes
``state.json``: final states are the worker's word (a local worker calls ``finish``,
a remote one's outcome comes back in ``Poll``) or the scheduler's verdict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from reflect_core.jobs.runfiles import OUTCOMES, JobError
from reflect_core.ml.spec import TrainSpec


class BackendUnavailable(JobError):
    """Raised by ``poll`` for a passing problem (network, service down): the scheduler asks again
    later and fails the run only when its heartbeat is overdue. Any other exception from ``poll``
    means the worker is lost and fails the run at once."""


@dataclass(frozen=True)
class Poll:
    """What ``poll`` found.

    alive: the worker still runs (or waits to start on the backend's side).
    reason: not alive and no outcome: why the worker is gone; becomes the run's error.
    outcome: not alive: how the worker said its attempt ended (one of ``OUTCOMES``),
        with ``error`` (failed) or ``result`` (completed). Remote workers only: a local
        worker records its outcome itself before it exits.
    progress: a remote worker's latest progress (the fields of ``progress.json``),
        which the scheduler writes locally; None when there is nothing new.
    """

    alive: bool
    reason: str | None = None
    outcome: str | None = None
    error: str | None = None
    result: dict | None = None
    progress: dict | None = None

    @classmethod
    def running(cls, progress: dict | None = None) -> "Poll":
        return cls(True, progress=progress)

    @classmethod
    def gone(cls, reason: str) -> "Poll":
        return cls(False, reason=reason)

    @classmethod
    def ended(cls, outcome: str, error: str | None = None, result: dict | None = None,
              progress: dict | None = None) -> "Poll":
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        return cls(False, outcome=outcome, error=error, result=result, progress=progress)


class Backend(ABC):
    """Runs workers. Implementations are registered by name in ``jobs.backends``.

    remote: the worker cannot see this machine's run files. Then the scheduler polls it at most
        once every ``poll_interval_s`` seconds whatever the number of pages and ticks, relays its
        progress and outcome, and kills it when it gives up on it. A local worker reads its
        run's files itself (control.json; state.json, to exit once it has been given up on).
    """

    name: str = ""
    remote: bool = False
    poll_interval_s: float = 0.0

    @abstractmethod
    def launch(self, run_dir: Path, spec: TrainSpec) -> str:
        """Start a worker for the run's next attempt; the ref that names it. Raise ``JobError``
        (its message becomes the run's error) when it cannot start."""

    @abstractmethod
    def poll(self, ref: str) -> Poll:
        """Whether the worker is alive, or how it ended. Called under the store's lock for local
        backends (so it must be cheap), outside it for remote ones."""

    @abstractmethod
    def request(self, ref: str, action: str) -> None:
        """Forward "pause" or "stop" to the worker. The store has already written the run's
        control.json (its record of the pending request), which is all a local worker reads."""

    @abstractmethod
    def kill(self, ref: str) -> None:
        """End the worker now, without a checkpoint; no error if it is already gone."""

    def tidy(self) -> None:
        """Cheap bookkeeping once per tick (the local backend reaps its exited children)."""
        return None
