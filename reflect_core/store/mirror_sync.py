"""One sync of the state mirror, and the restore at start: a file-level three-way merge between
the last synced manifest (the base, kept in ``.mirror/synced.json``), this machine's files and
the Hub's head.

- Restore (and a commit refused because another writer moved the head) downloads what changed
  only on the Hub; what changed only here stays and is pushed by the next sync; when both changed,
  this machine wins and the Hub's version is kept in ``.mirror/conflicts/`` (logged, counted); the
  history's records that only the Hub's ``history.json`` has are added to this machine's too (so a
  restore that failed at start, followed by work here, does not hide every earlier record).
  The login file is never replaced: users of the Hub copy that the local file lacks are added. A login
  file that changed only here (the Hub's matches the last sync: a user removed here) is not merged.
  A file the Hub lacks is never deleted here.
- A sync commits the files that differ from the base (copied first, so the bytes sent are the
  bytes hashed) and deletes the ones removed here, with the new manifest, on the base's head.
- After a restore, runs of this machine's local workers that the Hub recorded as running (their
  worker died with the old container) fail with a message saying how to continue.

Deletions are pushed only after a complete restore: a half-restored folder must never read as
"the user deleted everything".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filelock import FileLock, Timeout

from reflect_core.accounts.auth_config import add_registered_user, load_auth_config
from reflect_core.base.errors import ReflectError
from reflect_core.base.storage import StorageError, atomic_write_bytes, atomic_write_json, read_json, sha256_file
from reflect_core.jobs import runfiles
from reflect_core.store import history
from reflect_core.store.hub import HubError
from reflect_core.store.mirror_files import LOGIN, STATE_DIR, install, local_target, scan
from reflect_core.store.mirror_hub import HeadMoved, MirrorHub, check_manifest

log = logging.getLogger(__name__)
SYNCED = "synced.json"
MAX_MERGES = 3  # head moves in a row before a sync gives up until the next try
DOWNLOADS = 8  # at once, during a restore
RESTART_MESSAGE = "the server restarted while this run was running"
# A hash is remembered by (size, mtime) only for a file whose mtime was this much older than the
# moment it was hashed: a same-size rewrite within one timestamp tick would otherwise keep a stale
# hash, and that change would never be pushed ("racy git").
RACY_NS = 2_000_000_000
LOCK_TIMEOUT_S = 10
HISTORY = "data/history.json"


class StateMirror:
    """The data directory ``root`` (and the login file) mirrored to ``hub``'s repo."""

    def __init__(self, hub: MirrorHub, root: Path, login_path: Path | None = None):
        self.hub, self.root, self.login_path = hub, Path(root), None if login_path is None else Path(login_path)
        self.state_dir = self.root / STATE_DIR
        self.head, self.base = self._read_synced()
        self.restored = False
        self.conflicts: list[str] = []
        self.skipped: list[str] = []
        self.failed_runs: list[str] = []
        self.last_sync: float | None = None
        self._hashes: dict[str, tuple[int, int, str]] = {}  # repo path → (size, mtime_ns, sha256)
        self._files: dict[str, Path] = {}
        self._stats: dict[str, tuple[int, int]] = {}  # repo path → (size, mtime_ns) at the last local()
        self._written: list[Path] = []  # files a restore put in place, until it completes
        self._lock = threading.Lock()

    def _read_synced(self) -> tuple[str | None, dict]:
        try:
            saved = read_json(self.state_dir / SYNCED) or {}
            return saved.get("head"), check_manifest({"version": 1, "files": saved.get("files") or {}})
        except (StorageError, HubError, AttributeError):
            return None, {}  # no usable base: every difference counts as a conflict, nothing is lost

    def _save_synced(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.state_dir / SYNCED, {"head": self.head, "files": self.base})

    # ---- this machine's files ---------------------------------------------------------------------

    def local(self) -> dict[str, dict]:
        """repo path → {"sha256", "size"} of every mirrored file here (hashed again only when its
        size or modification time changed)."""
        found, skipped = scan(self.root, self.login_path)
        entries = {}
        for path, (file, size, mtime) in found.items():
            cached = self._hashes.get(path)
            if cached is None or cached[:2] != (size, mtime):
                hashed_at = time.time_ns()
                try:
                    cached = (size, mtime, sha256_file(file))
                except OSError:
                    if os.path.lexists(file):  # there but unreadable: kept on the Hub, never a deletion
                        skipped.append(path)
                    continue  # else removed meanwhile
                if hashed_at - mtime >= RACY_NS:
                    self._hashes[path] = cached
                else:
                    self._hashes.pop(path, None)
            entries[path] = {"sha256": cached[2], "size": size}
        self.skipped = skipped
        self._files = {path: found[path][0] for path in entries}
        self._stats = {path: found[path][1:] for path in entries}
        return entries

    # ---- restore and merge ------------------------------------------------------------------------

    def restore(self) -> list[Path]:
        """Bring the Hub's head here (see the module's rules); the files written. HubError when the
        Hub cannot be read: nothing is deleted, and the restore is tried again before any sync."""
        with self._lock:
            return self._restore()

    def _restore(self) -> list[Path]:
        self._merge(self.hub.head())
        # Before the restore counts as done: a busy job store fails it, and the next try sees these again.
        self.failed_runs += fail_interrupted_runs(self._written)
        written, self._written = self._written, []
        self.restored, self.last_sync = True, time.time()
        return written

    def _work_dir(self, kind: str) -> Path:
        """A fresh folder in ``.mirror`` for one merge's downloads or one commit's copies: never shared with
        another server process on this data directory, nor with a timed-out call still running."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.state_dir))

    def _merge(self, head: str | None) -> None:
        staging = self._work_dir("staging")
        try:
            remote = self.hub.manifest(head, staging)
            local = self.local()
            changed = [(path, entry, local.get(path) != self.base.get(path)) for path, entry in sorted(remote.items())
                       if self._wanted(path, entry, local)]
            with ThreadPoolExecutor(DOWNLOADS) as pool:  # each download is bounded by the Hub's timeout
                downloaded = list(pool.map(lambda item: self._download(item[0], head, staging), changed))
            for (path, entry, conflict), file in zip(changed, downloaded):
                if path == LOGIN:
                    self._merge_login(file, entry)
                else:
                    self._take(path, entry, file, conflict, self._stats.get(path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.head, self.base = head, remote
        self._save_synced()

    def _wanted(self, path: str, entry: dict, local: dict) -> bool:
        """Whether the Hub's ``entry`` must come here: it differs from this machine's file and changed on
        the Hub since the last sync (the login file too, or when there is none here: its users are merged)."""
        if entry == local.get(path):
            return False
        if path == LOGIN:  # changed on the Hub, or not here at all
            return self.login_path is not None and (entry != self.base.get(path) or path not in local)
        return entry != self.base.get(path)

    def _take(self, path: str, entry: dict, downloaded: Path, conflict: bool, scanned: tuple[int, int] | None) -> None:
        """Install the Hub's version of ``path`` here, or beside it as a conflict copy when it changed
        here too (this machine's version wins). A file here that the scan did not hash (too big,
        unreadable) or that changed since (a write during the downloads) counts as changed here: it is
        checked under the file's own lock (TinyDB's ``<name>.lock``) just before it would be replaced."""
        target = local_target(path, self.root, self.login_path)
        if self.login_path is not None and os.path.abspath(target) == os.path.abspath(self.login_path):
            self._login_not_merged(path, ValueError("the login file is merged only as login/auth.yaml"))
            return
        with _target_lock(target) as locked:
            if not conflict and (not locked or _stat(target) != scanned):
                conflict = True
            if not conflict:
                install(downloaded, target, entry, self.root)
                self._written.append(target)
                info = target.stat()
                self._hashes[path] = (info.st_size, info.st_mtime_ns, entry["sha256"])  # not hashed again by local()
                return
        if path == HISTORY:
            _add_history_records(downloaded, target)
        copy = self.state_dir / "conflicts" / time.strftime("%Y%m%d-%H%M%S") / path
        install(downloaded, copy, entry, self.root)
        self.conflicts.append(path)
        log.warning("state mirror: %s changed here and on the Hub; kept this machine's, the Hub's is in %s",
                    path, copy)

    def _download(self, path: str, head: str, staging: Path) -> Path:
        try:
            return self.hub.download(path, head, staging)
        except FileNotFoundError:
            raise HubError(f"the Hub's manifest lists {path}, which its commit {head} lacks") from None

    def _merge_login(self, downloaded: Path, entry: dict) -> None:
        """The Hub's login file: written when there is none here, else its users that this file lacks
        (people who signed up) are added, without roles; the deployer's entries are never touched."""
        if self.login_path is None:
            return
        if sha256_file(downloaded) != entry["sha256"]:
            raise HubError("the Hub's login file does not match its manifest")
        try:
            hub_users = load_auth_config(downloaded)["credentials"]["usernames"]
            if not self.login_path.exists():
                atomic_write_bytes(self.login_path, downloaded.read_bytes())
                return
            local = {name.lower() for name in load_auth_config(self.login_path)["credentials"]["usernames"]}
        except ReflectError as exc:
            self._login_not_merged(LOGIN, exc)
            return
        for name, user in hub_users.items():
            if name.lower() not in local:
                try:
                    add_registered_user(self.login_path, name, {**user, "roles": None})
                except ReflectError as exc:
                    self._login_not_merged(f"{LOGIN}: {name}", exc)

    def _login_not_merged(self, what: str, exc: Exception) -> None:
        log.warning("state mirror: %s was not merged into the login file: %s", what, exc)
        self.conflicts.append(f"{what} ({exc})")

    # ---- sync -------------------------------------------------------------------------------------

    def sync(self, message: str = "state mirror") -> bool:
        """Push what changed here since the last sync in one commit (merging first when the head moved);
        False when nothing had changed. Restores first if that has not succeeded yet. HubError on failure."""
        with self._lock:
            if not self.restored:
                self._restore()
            for _ in range(MAX_MERGES):
                local = self.local()
                changed = sorted(p for p, entry in local.items() if self.base.get(p) != entry)
                kept = set(self.skipped) | {LOGIN}  # a skipped file or an absent login file is no deletion
                deletes = sorted(p for p in self.base if p not in local and p not in kept)
                if not changed and not deletes:
                    self.last_sync = time.time()
                    return False
                try:
                    head, files = self._commit(changed, deletes, local, message)
                except HeadMoved:
                    self._merge(self.hub.head())
                    self._written.clear()  # another writer's runs: its workers are alive there
                    continue
                self.head, self.base, self.last_sync = head, files, time.time()
                self._save_synced()
                return True
        raise HubError(f"the Hub repo {self.hub.repo_id} kept changing during the sync; it is tried again later")

    def _commit(self, changed: list[str], deletes: list[str], local: dict, message: str) -> tuple[str | None, dict]:
        outgoing = self._work_dir("outgoing")
        try:
            kept = {p: self.base[p] for p in (*self.skipped, LOGIN) if p in self.base}  # still on the Hub
            files = {**kept, **local}
            adds = {}
            for n, path in enumerate(changed):
                copy = outgoing / str(n)
                try:
                    shutil.copyfile(self._files[path], copy)
                except OSError:  # removed since the scan: deleted on the Hub too when it was there
                    files.pop(path)
                    deletes = [*deletes, path] if path in self.base else deletes
                    continue
                adds[path] = copy
                files[path] = {"sha256": sha256_file(copy), "size": copy.stat().st_size}
            head = self.hub.commit(adds, deletes, files, self.head,
                                   f"{message}: {len(adds)} changed, {len(deletes)} deleted")
            return head, files
        finally:
            shutil.rmtree(outgoing, ignore_errors=True)


def _stat(target: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of the file at ``target`` as ``scan`` records it; None when there is none."""
    try:
        info = target.lstat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


@contextlib.contextmanager
def _target_lock(target: Path, always: bool = False):
    """The lock its owner takes to write ``target`` (a TinyDB file's ``<name>.lock``), when it has one
    (``always``: even when it has not been made yet); yields False when that lock stayed busy (then the
    file is left alone)."""
    lock_path = Path(f"{target}.lock")
    if not always and not lock_path.exists():
        yield True
        return
    lock = FileLock(lock_path, timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _add_history_records(downloaded: Path, target: Path) -> int:
    """Add to the history file ``target`` the records of the Hub's ``downloaded`` one that it lacks
    (by record id), under the history's lock; how many. Nothing when either file is not a history."""
    try:
        theirs = json.loads(downloaded.read_text(encoding="utf-8")).get(history._TABLE)
    except (OSError, ValueError, AttributeError):
        return 0
    if not isinstance(theirs, dict):
        return 0
    with _target_lock(target, always=True) as locked:
        if not locked:
            return 0
        try:
            ours = read_json(target) or {}
            docs = ours.setdefault(history._TABLE, {})
        except (StorageError, AttributeError):
            return 0
        if not isinstance(docs, dict):
            return 0
        ids = {doc.get("id") for doc in docs.values() if isinstance(doc, dict)}
        next_id = max((int(key) for key in docs if str(key).isdigit()), default=0) + 1
        added = 0
        for doc in theirs.values():
            if isinstance(doc, dict) and all(field in doc for field in history._FIELDS) and doc["id"] not in ids:
                docs[str(next_id)] = doc
                ids.add(doc["id"])
                next_id, added = next_id + 1, added + 1
        if added:
            atomic_write_json(target, ours)
    if added:
        log.warning("state mirror: %d history record(s) only the Hub had were added to %s", added, target)
    return added


def fail_interrupted_runs(written: list[Path]) -> list[str]:
    """Runs (training or fit) whose ``state.json`` came from the Hub saying a local worker runs it: that
    worker died with the old server, so the run fails; resume continues it when it has a checkpoint.
    Modal runs go on remotely and are left to the scheduler. The run ids failed."""
    failed = []
    with runfiles.locked():
        for path in (file.parent for file in written if file.name == runfiles.STATE):
            try:
                state = runfiles.load_state(path)
            except runfiles.DamagedRun:
                continue
            if state is None or state["state"] != "running" or state["backend"] != "local":
                continue
            if (path / runfiles.CHECKPOINT).is_file():
                how = "resume continues from its last checkpoint"
            else:
                how = "retry starts it again" if path.parent == runfiles.runs_dir() else "start the fit again"
            message = f"{RESTART_MESSAGE}: {how}"
            runfiles.append_log(path, f"state mirror: {message}")
            runfiles.end_attempt(path, state, "failed", error=message)
            failed.append(path.name)
    return failed
