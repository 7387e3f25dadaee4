"""A fake Hub dataset repo for the state mirror: commits with shas and parents, a head, adds and
deletes, downloads by revision, the 412 the Hub answers to a commit whose parent is not the head,
and knobs for a slow or unreachable Hub. It keeps every revision in memory. Also the mirror tests'
shared fixtures (import them by name) and a mirror as a fresh server process makes it."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx2
import huggingface_hub.constants
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, errors

from reflect_core.store import mirror
from reflect_core.store.mirror import Mirror, MirrorSettings


def _http_error(status: int, message: str) -> errors.HfHubHTTPError:
    response = httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/datasets/x/commit"))
    return errors.HfHubHTTPError(message, response=response)


class FakeStateHub:
    """The HfApi calls the mirror makes. ``delay`` slows every call; ``unreachable`` makes each
    raise a connection error; ``commits`` counts commits made through ``create_commit``."""

    def __init__(self):
        first = hashlib.sha1(b"initial").hexdigest()
        self.revisions: dict[str, dict[str, bytes]] = {first: {".gitattributes": b"*.pt filter=lfs\n"}}
        self.head_sha, self.commits, self.calls = first, 0, []
        self.delay, self.unreachable = 0.0, False
        self.before_commit = None  # a test's hook, run once at the next create_commit (another writer)
        self.before_download = None  # a test's hook, run with the file name at each hf_hub_download
        self.repo_type = self.private = None

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        time.sleep(self.delay)
        if self.unreachable:
            raise ConnectionError("[Errno 111] Connection refused")

    @property
    def files(self) -> dict[str, bytes]:
        return self.revisions[self.head_sha]

    # ---- HfApi ---------------------------------------------------------------------------------

    def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
        self._enter("create_repo")
        if self.private is None:  # exist_ok: an existing repo keeps its visibility
            self.private = private
        self.repo_type = repo_type

    def repo_info(self, repo_id, repo_type=None, revision=None):
        self._enter("repo_info")
        return SimpleNamespace(sha=self.head_sha, id=repo_id, private=self.private)

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, parent_commit=None):
        self._enter("create_commit")
        assert repo_type == "dataset"
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            hook()
        # The real client uploads every file (reads its bytes) before it sends the commit, which the
        # Hub then refuses when the parent is not the head.
        contents = {}
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                with op.as_file() as handle:
                    contents[op.path_in_repo] = handle.read()
            else:
                contents[op.path_in_repo] = None
        if parent_commit is not None and parent_commit != self.head_sha:
            raise _http_error(412, "412 Client Error: Precondition Failed (the parent commit is not the head)")
        self.commits += 1
        return SimpleNamespace(oid=self.push(contents, commit_message))

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None, local_dir=None):
        self._enter("hf_hub_download")
        if self.before_download is not None:
            self.before_download(filename)
        snapshot = self.revisions[revision or self.head_sha]
        if filename not in snapshot:
            raise errors.EntryNotFoundError(f"{filename} not found at {revision}")
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(snapshot[filename])
        return str(target)

    # ---- for tests: another writer -------------------------------------------------------------

    def write_as_another_mirror(self, changes: dict[str, bytes | None]) -> str:
        """What a second app writing to the same repo commits: the files and its manifest, in step."""
        manifest = json.loads(self.files.get("manifest.json", b'{"version": 1, "files": {}}'))
        for path, data in changes.items():
            if data is None:
                manifest["files"].pop(path, None)
            else:
                manifest["files"][path] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        return self.push({**changes, "manifest.json": json.dumps(manifest).encode()})

    def push(self, operations, message: str = "another writer") -> str:
        """Apply ``operations`` (CommitOperationAdd/Delete, or a {path: bytes | None} dict) as a new head."""
        if isinstance(operations, dict):
            operations = [CommitOperationDelete(path_in_repo=path) if data is None
                          else CommitOperationAdd(path_in_repo=path, path_or_fileobj=data)
                          for path, data in operations.items()]
        files = dict(self.files)
        for op in operations:
            if isinstance(op, CommitOperationDelete):
                files.pop(op.path_in_repo)
            else:
                with op.as_file() as handle:
                    files[op.path_in_repo] = handle.read()
        sha = hashlib.sha1(f"{self.head_sha}{message}{len(self.revisions)}".encode()).hexdigest()
        self.revisions[sha], self.head_sha = files, sha
        return sha


@pytest.fixture(name="hub")
def hub_fixture():
    """A fresh fake state repo (import hub_fixture to use it as `hub`)."""
    return FakeStateHub()


@pytest.fixture
def mirror_env(tmp_path, monkeypatch):
    """A data directory of the test's own, jobs that stay queued, a Hub the fake stands in for."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # jobs stay queued unless a test lets them run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the fake never reaches the network
    yield
    mirror.reset()


def settings(login_path=None) -> MirrorSettings:
    return MirrorSettings("me/reflect-state", "hf_fake", None if login_path is None else str(login_path),
                          "HF_STATE_REPO_ID")


def new_mirror(hub, login_path=None, timeout_s=5.0) -> Mirror:
    """What a fresh server process makes: nothing remembered but the files on its disk."""
    return Mirror(settings(login_path), api=hub, timeout_s=timeout_s)
