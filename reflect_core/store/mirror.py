"""The state mirror (README, "What is kept"): the app's durable state (the data directory: history,
uploads, models, run records; and the login file's users) kept in a private Hub dataset repo, so
that a container that loses its disk (Community Cloud's sleep, reboot, redeploy) starts again
with everything.

Settings: ``HF_TOKEN`` and ``HF_STATE_REPO_ID`` (a dataset repo, created private on first use).
On a shared deployment without ``HF_STATE_REPO_ID``, ``HF_REPO_ID`` names the dataset repo too
(a dataset and a model repo of one name are distinct repos on the Hub). Local mode mirrors only
when ``HF_STATE_REPO_ID`` is set.

``start`` restores once (``mirror_sync``), then one daemon thread per process looks at the files'
sizes and modification times every ``scan_interval_s`` (cheap, and it sees what worker processes
write) and syncs when nothing changed for ``quiet_s`` (or changes kept coming for ``max_wait_s``),
never sooner than ``min_commit_interval_s`` after the last commit: DESIGN keeps commits well under
one a minute. ``notify`` wakes it, ``flush`` syncs now. A failing Hub is retried every ``retry_s``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import data_dir
from reflect_core.store.mirror_files import scan
from reflect_core.store.mirror_hub import MirrorHub
from reflect_core.store.mirror_sync import StateMirror

log = logging.getLogger(__name__)
STATE_SETTING = "HF_STATE_REPO_ID"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class MirrorSettingsError(InvalidInput):
    """The mirror is asked for but cannot work as set (a malformed repo id, no token)."""


@dataclass(frozen=True)
class MirrorSettings:
    repo_id: str                 # the private dataset repo
    token: str = field(repr=False)  # never in a repr, a log line or a traceback's locals
    login_path: str | None       # AUTH_CONFIG, mirrored beside the data directory
    setting: str                 # which setting named the repo, for messages


def mirror_settings(config: dict, mode: str) -> MirrorSettings | None:
    """The mirror's settings, or None when none is configured; MirrorSettingsError when set badly."""
    setting = STATE_SETTING if config.get(STATE_SETTING) else "HF_REPO_ID" if mode == "shared" else None
    repo_id = str(config.get(setting) or "").strip() if setting else ""
    if not repo_id:
        return None
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise MirrorSettingsError(f"{setting} {repo_id!r} is not a Hub repo id of the form 'owner/name'")
    token = config.get("HF_TOKEN")
    if not token:
        if setting == STATE_SETTING:
            raise MirrorSettingsError(f"{STATE_SETTING} is set but HF_TOKEN is not: the mirror needs a write token")
        return None  # HF_REPO_ID without a token: the Hub is simply not configured
    return MirrorSettings(repo_id, str(token), config.get("AUTH_CONFIG") or config.get("auth_config") or None,
                          setting)


class Mirror:
    """A ``StateMirror`` and the thread that keeps it in step."""

    scan_interval_s = 2.0
    quiet_s = 5.0
    max_wait_s = 120.0
    min_commit_interval_s = 60.0
    retry_s = 60.0

    def __init__(self, settings: MirrorSettings, api=None, root: Path | None = None, timeout_s: float = 10.0):
        self.settings = settings
        hub = MirrorHub(settings.repo_id, settings.token, api=api, timeout_s=timeout_s)
        login = Path(settings.login_path) if settings.login_path else None
        self.state = StateMirror(hub, data_dir() if root is None else Path(root), login)
        self.error: str | None = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[int, int]] = {}  # repo path → (size, mtime_ns) at the last look
        self._synced: dict[str, tuple[int, int]] = {}  # ... when last known to match the Hub
        self._changed_at = self._pending_since = self._last_commit = self._next_try = -float("inf")

    # ---- the work --------------------------------------------------------------------------------

    def restore(self) -> bool:
        """Restore now; False (and ``error`` says why) when the Hub could not be read."""
        try:
            self.state.restore()
        except Exception as exc:  # noqa: BLE001 - HubError, a refused file, a busy job store, a hostile login file
            return self._failed(f"restore from {self.settings.repo_id}", exc)
        self.error = None
        local, seen = self.state.local(), self._look()
        # What matches the Hub now counts as synced; the rest (work done here) is pending.
        self._synced = {path: stat for path, stat in seen.items() if local.get(path) == self.state.base.get(path)}
        self._seen = seen
        return True

    def flush(self, now: float | None = None) -> bool:
        """Send what is pending now; False (and ``error``) when that failed."""
        seen = self._look()
        try:
            committed = self.state.sync()
        except Exception as exc:  # noqa: BLE001 - whatever it was, the next try is in retry_s
            return self._failed(f"save to {self.settings.repo_id}", exc)
        self.error, self._synced, self._seen = None, seen, seen
        if committed:
            self._last_commit = time.monotonic() if now is None else now
        return True

    def _failed(self, what: str, exc: Exception) -> bool:
        self.error = f"{what} failed: {exc}"
        self._next_try = time.monotonic() + self.retry_s
        log.warning("state mirror: %s", self.error)
        return False

    def _look(self) -> dict[str, tuple[int, int]]:
        found, _ = scan(self.state.root, self.state.login_path)
        return {path: (size, mtime) for path, (_, size, mtime) in found.items()}

    def pending(self) -> int:
        """Files changed, added or removed since the last sync (by size and modification time)."""
        return len(set(self._seen.items()) ^ set(self._synced.items()))

    def tick(self, now: float | None = None) -> None:
        """One look; a restore or a sync when one is due (the thread calls this; tests may too)."""
        now = time.monotonic() if now is None else now
        seen = self._look()
        if seen != self._seen:
            self._seen, self._changed_at = seen, now
        if now < self._next_try:
            return
        if not self.state.restored:
            self.restore()
            return
        if self._seen == self._synced:
            self._pending_since = -float("inf")
            return
        if self._pending_since == -float("inf"):
            self._pending_since = now
        settled = now - self._changed_at >= self.quiet_s or now - self._pending_since >= self.max_wait_s
        if settled and now - self._last_commit >= self.min_commit_interval_s:
            self.flush(now)
            self._pending_since = -float("inf")

    # ---- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="state-mirror", daemon=True)
            self._thread.start()
            # The last sync at exit needs threads (bounded calls, uploads), which Python 3.12 no longer
            # starts from atexit handlers: this hook (concurrent.futures' own) runs before that point.
            getattr(threading, "_register_atexit", atexit.register)(self.stop)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.scan_interval_s)
            self._wake.clear()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._failed("the state mirror", exc)

    def notify(self) -> None:
        """Something changed: look now rather than at the next interval."""
        self._wake.set()

    def stop(self, flush: bool = True) -> None:
        """End the thread, after a last sync unless ``flush`` is False; once."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if flush and self.state.restored:
            with contextlib.suppress(RuntimeError):  # too late in the interpreter's shutdown to send it
                self.flush()

    def status(self) -> dict:
        return {"configured": True, "repo": self.settings.repo_id, "last_sync": self.state.last_sync,
                "pending": self.pending(), "error": self.error, "restored": self.state.restored,
                "skipped": list(self.state.skipped), "conflicts": list(self.state.conflicts),
                "failed_runs": list(self.state.failed_runs)}


_LOCK = threading.Lock()
_MIRROR: Mirror | None = None


def start(settings: MirrorSettings, api=None, background: bool = True) -> Mirror:
    """This process's mirror: created, restored (bounded by the Hub timeouts) and its thread started
    on the first call; the same one afterwards."""
    global _MIRROR
    with _LOCK:
        if _MIRROR is None:
            mirror = Mirror(settings, api=api)
            mirror.restore()
            if background:
                mirror.start()
            _MIRROR = mirror
        return _MIRROR


def current() -> Mirror | None:
    return _MIRROR


def reset() -> None:
    """Forget this process's mirror (its thread is stopped without a last sync): tests, and a
    process that must start over."""
    global _MIRROR
    with _LOCK:
        if _MIRROR is not None:
            _MIRROR.stop(flush=False)
        _MIRROR = None


def mirror_status() -> dict:
    """{"configured", "repo", "last_sync", "pending", "error"} (and, when configured, "restored",
    "skipped", "conflicts", "failed_runs")."""
    if _MIRROR is None:
        return {"configured": False, "repo": None, "last_sync": None, "pending": 0, "error": None}
    return _MIRROR.status()

