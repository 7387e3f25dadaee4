"""The Hub side of the state mirror: one private dataset repo, read and written only through
bounded calls (``call_with_deadline``), so an unreachable Hub costs at most a timeout.

The repo holds ``manifest.json`` (repo path → sha256 and size of every mirrored file) and the
files themselves, all written by one commit per sync, so every revision is a consistent
snapshot. Commits name their parent: when another writer moved the head meanwhile the Hub
refuses the commit (HTTP 412; 409 is treated alike) and ``HeadMoved`` is raised for the caller
to merge. Nothing the Hub sends is trusted: ``check_manifest`` validates every entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reflect_core.base.deadline import NoAnswer, call_with_deadline
from reflect_core.store.hub import OFFLINE_MESSAGE, HubError, describe_hub_error, hub_offline, is_absent
from reflect_core.store.mirror_files import MAX_FILE_BYTES, repo_path_problem

MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 20_000_000  # ~100,000 entries
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEAD_MOVED_STATUS = (409, 412)


class HeadMoved(Exception):
    """The repo's head is no longer the parent the commit named: another writer committed."""


def check_manifest(raw) -> dict[str, dict]:
    """The manifest's files as {repo path: {"sha256", "size"}}; HubError naming the first bad entry."""
    files = raw.get("files") if isinstance(raw, dict) and raw.get("version") == 1 else None
    if not isinstance(files, dict):
        raise HubError("the Hub's manifest.json is not a version-1 manifest: nothing was restored from it")
    for path, entry in files.items():
        problem = repo_path_problem(path)
        if problem is None and not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                                    and _SHA256.fullmatch(entry["sha256"]) and type(entry.get("size")) is int
                                    and 0 <= entry["size"] <= MAX_FILE_BYTES):
            problem = "its sha256 or size is malformed"
        if problem:
            raise HubError(f"the Hub's manifest.json lists {str(path)[:200]!r}: {problem}; nothing was restored")
    return {path: {"sha256": entry["sha256"], "size": entry["size"]} for path, entry in files.items()}


class MirrorHub:
    """Bounded calls on the state repo (a dataset). ``api`` is an ``HfApi`` or a test's fake."""

    def __init__(self, repo_id: str, token: str | None, api=None, timeout_s: float = 10.0,
                 transfer_timeout_s: float = 120.0):
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        self.repo_id, self._api = repo_id, api
        self.timeout_s, self.transfer_timeout_s = float(timeout_s), float(transfer_timeout_s)
        self._repo_ready = False

    def _call(self, what: str, fn, *args, timeout_s: float | None = None, **kwargs):
        if hub_offline():
            raise HubError(OFFLINE_MESSAGE)
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return call_with_deadline(lambda: fn(*args, **kwargs), limit, f"mirror: {what}")
        except NoAnswer:
            raise HubError(f"the Hub did not answer within {limit:g} s ({what}): it may be unreachable") from None
        except (HubError, HeadMoved):
            raise
        except Exception as exc:  # noqa: BLE001 - a client error, worded for the user
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in _HEAD_MOVED_STATUS:
                raise HeadMoved(what) from None
            if is_absent(exc):
                raise FileNotFoundError(what) from None
            raise describe_hub_error(exc, what) from None

    def ensure_repo(self) -> None:
        if not self._repo_ready:
            self._call(f"create the dataset repo {self.repo_id}", self._api.create_repo, self.repo_id, private=True,
                       exist_ok=True, repo_type="dataset")
            self._repo_ready = True

    def head(self) -> str | None:
        """The sha of the repo's head commit (None for a repo without one)."""
        self.ensure_repo()
        info = self._call(f"read the head of {self.repo_id}", self._api.repo_info, self.repo_id, repo_type="dataset")
        if getattr(info, "private", None) is False:  # create_repo(exist_ok=True) leaves an existing repo as it is
            raise HubError(f"the Hub dataset {self.repo_id} is public: the state mirror (login file, uploads, "
                           "history) is kept only in a private repo; make it private or name another one")
        return getattr(info, "sha", None)

    def download(self, path: str, revision: str, staging: Path) -> Path:
        """``path`` at ``revision``, downloaded under ``staging``; FileNotFoundError when it is not there."""
        local = self._call(f"download {path}", self._api.hf_hub_download, self.repo_id, path, repo_type="dataset",
                           revision=revision, local_dir=staging, timeout_s=self.transfer_timeout_s)
        return Path(local)

    def manifest(self, revision: str | None, staging: Path) -> dict[str, dict]:
        """The files listed at ``revision`` ({} for a repo that has no manifest yet), validated."""
        if revision is None:
            return {}
        try:
            local = self.download(MANIFEST, revision, staging)
        except FileNotFoundError:
            return {}
        if local.stat().st_size > MANIFEST_MAX_BYTES:
            raise HubError(f"the Hub's manifest.json is over {MANIFEST_MAX_BYTES:,} bytes: nothing was restored")
        try:
            raw = json.loads(local.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HubError(f"the Hub's manifest.json cannot be read ({exc}): nothing was restored") from None
        return check_manifest(raw)

    def commit(self, adds: dict[str, Path], deletes: list[str], files: dict[str, dict], parent: str | None,
               message: str) -> str | None:
        """One commit: ``adds`` (repo path → local file), ``deletes`` and the new manifest, on ``parent``.
        The new head's sha; ``HeadMoved`` when ``parent`` is no longer the head."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        manifest = json.dumps({"version": 1, "files": files}, indent=0, sort_keys=True).encode()
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(local)) for path, local in adds.items()]
        operations += [CommitOperationDelete(path_in_repo=path) for path in deletes]
        operations.append(CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=manifest))
        self.ensure_repo()
        info = self._call(f"commit to {self.repo_id}", self._api.create_commit, self.repo_id, operations,
                          commit_message=message, repo_type="dataset", parent_commit=parent,
                          timeout_s=self.transfer_timeout_s)
        return getattr(info, "oid", None)
