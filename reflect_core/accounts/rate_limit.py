"""Per-user rate limits (job submissions, uploads) over a sliding one-minute window.

Kept in small JSON files under the data directory, behind a file lock, so they
hold across page reruns, sessions and server restarts.
"""

from __future__ import annotations

import json
import math
import time

from filelock import FileLock

from reflect_core.base.errors import LimitError
from reflect_core.base.storage import atomic_write_json, data_dir

WINDOW_S = 60.0
DEFAULT_PER_MINUTE = {"submit": 5, "upload": 10}
ACTION_WORDS = {"submit": "job submissions", "upload": "uploads"}


class RateLimitError(LimitError):
    """Too many actions in the window; the message says when to try again."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _path(user: str, action: str):
    folder = data_dir() / "rate_limits"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{user}.{action}.json"


def hit(user: str, action: str, per_minute: int | None = None, now: float | None = None) -> None:
    """Record one action, or raise RateLimitError if ``per_minute`` were exceeded."""
    limit = per_minute if per_minute is not None else DEFAULT_PER_MINUTE[action]
    now = time.time() if now is None else now
    path = _path(user, action)
    with FileLock(str(path) + ".lock", timeout=10):
        try:
            stamps = json.loads(path.read_text())
        except (OSError, ValueError):
            stamps = []  # a missing or damaged counter only ever errs on the side of allowing
        recent = [t for t in stamps if now - t < WINDOW_S]
        if len(recent) >= limit:
            wait = WINDOW_S - (now - min(recent))
            raise RateLimitError(
                f"Too many {ACTION_WORDS.get(action, action)}: at most {limit} per minute. "
                f"Try again in {math.ceil(wait)} s.", wait)
        atomic_write_json(path, recent + [now])
