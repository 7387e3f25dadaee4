"""The Hugging Face Hub as durable storage for runs: the one client boundary (``HubRunStore``)
used by the Modal function and by the app. Tests replace ``api`` with a fake.

Layout of the (private, model-type) repo ``HF_REPO_ID``: ``runs/<run_id>/<name>`` for a run's
files, and ``runs/<run_id>/model/`` (``model.json``, ``model.pt``, ``README.md``, the model
card) for its trained model, written in one commit. Every network call runs in a daemon thread
bounded by ``timeout_s`` (model transfers by ``transfer_timeout_s``), so an unreachable Hub
never holds a caller longer than that; offline mode (``HF_HUB_OFFLINE``) fails at once.

Commits stay well under the Hub's rate limits: ``put`` sends at most one commit per run at a
time and at most one per ``min_commit_interval_s``; puts in between are kept (the latest bytes
per name, so intermediate checkpoints are skipped) and go with the next commit or ``flush``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from reflect_core.base.deadline import NoAnswer, call_with_deadline
from reflect_core.base.errors import ReflectError
from reflect_core.base.storage import data_dir
from reflect_core.ml.meta import META, ModelLoadError, ModelMeta
from reflect_core.ml.model_store import WEIGHTS

CARD = "README.md"
MODEL_FILES = (META, WEIGHTS)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}){0,3}")
OFFLINE_MESSAGE = "the Hub is offline (HF_HUB_OFFLINE)"


class HubError(ReflectError):
    """The Hub could not do what was asked: offline, unreachable (or too slow), the token refused,
    the repo missing, or an upload failed. The message says which."""


class _Absent(Exception):
    """A file that is not on the Hub (never leaves this module)."""


def hub_cache_dir(run_id: str) -> Path:
    """Where a Hub run's files are cached on this machine: ``<data dir>/hub_cache/<run_id>``."""
    return data_dir() / "hub_cache" / _check_run_id(run_id)


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise HubError(f"{run_id!r} is not a run id")
    return run_id


def _path(run_id: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise HubError(f"{name!r} is not a file name for the Hub")
    return f"runs/{_check_run_id(run_id)}/{name}"


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def describe_hub_error(exc: BaseException, what: str) -> HubError:
    """One clear HubError for whatever the client raised."""
    from huggingface_hub import errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError(OFFLINE_MESSAGE)
    if status in (401, 403):
        return HubError(f"the Hub refused the token (HTTP {status}) for {what}: check HF_TOKEN and its write access")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(f"{what}: the Hub repo does not exist or HF_TOKEN cannot read it")
    if isinstance(exc, errors.LocalEntryNotFoundError) or (isinstance(exc, OSError) and status is None):
        return HubError(f"the Hub cannot be reached ({what}): {exc}")
    return HubError(f"{what} failed on the Hub: {type(exc).__name__}: {exc}")


def is_absent(exc: BaseException) -> bool:
    from huggingface_hub import errors

    return isinstance(exc, errors.EntryNotFoundError) and not isinstance(exc, errors.LocalEntryNotFoundError)


class HubRunStore:
    """Runs' files and models in one private Hub repo. ``api`` is an ``HfApi`` (made from ``token``
    when not given); tests pass a fake with the same methods."""

    min_commit_interval_s = 30.0  # per run, between commits that ``put`` starts

    def __init__(self, repo_id: str, token: str | None, api=None, timeout_s: float = 10.0):
        if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id):
            raise HubError(f"HF_REPO_ID {repo_id!r} is not of the form 'owner/name'")
        self.repo_id, self.timeout_s = repo_id, float(timeout_s)
        self.transfer_timeout_s = max(self.timeout_s, 120.0)  # a model's weights, a flush
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        self._api = api
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}  # run id → the commit put started for it
        self._waiting: dict[str, dict[str, bytes]] = {}  # run id → name → latest bytes not sent yet
        self._last_commit: dict[str, float] = {}
        self._errors: list[str] = []
        self._repo_ready = False

    # ---- the bounded call ------------------------------------------------------------------------------

    def _call(self, what: str, fn, *args, timeout_s: float | None = None, **kwargs):
        """``fn(*args, **kwargs)`` in a daemon thread; HubError when offline, failing or slower than the timeout;
        ``_Absent`` when the file is not on the Hub."""
        if hub_offline():
            raise HubError(OFFLINE_MESSAGE)
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return call_with_deadline(lambda: fn(*args, **kwargs), limit, f"hub: {what}")
        except NoAnswer:
            raise HubError(f"the Hub did not answer within {limit:g} s ({what}): it may be unreachable") from None
        except HubError:
            raise
        except Exception as exc:  # noqa: BLE001 - a client error, worded for the user
            if is_absent(exc):
                raise _Absent(what) from None
            raise describe_hub_error(exc, what) from None

    def _ensure_repo(self) -> None:
        if not self._repo_ready:
            self._call(f"create the repo {self.repo_id}", self._api.create_repo, self.repo_id, private=True,
                       exist_ok=True, repo_type="model")
            self._repo_ready = True

    def _operations(self, files: dict[str, bytes]) -> list:
        from huggingface_hub import CommitOperationAdd

        return [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]

    # ---- a run's files ---------------------------------------------------------------------------------

    def _reap(self, run_id: str) -> None:
        """Forget the run's commit if it is done, keeping its error for ``flush`` (under the lock)."""
        future = self._inflight.get(run_id)
        if future is not None and future.done():
            del self._inflight[run_id]
            if future.exception() is not None:
                self._errors.append(str(describe_hub_error(future.exception(), f"upload for run {run_id}")))

    def put(self, run_id: str, name: str, data: bytes) -> None:
        """Send ``runs/<run_id>/<name>`` without waiting (``flush`` waits). While the run's previous commit
        is still running, or sooner than ``min_commit_interval_s`` after it, the bytes are kept and go with
        the next commit (a newer put of the same name replaces them)."""
        path = _path(run_id, name)
        if hub_offline():
            raise HubError(OFFLINE_MESSAGE)
        with self._lock:
            self._reap(run_id)
            self._waiting.setdefault(run_id, {})[path] = bytes(data)
            recent = time.monotonic() - self._last_commit.get(run_id, -math.inf) < self.min_commit_interval_s
            if run_id in self._inflight or recent:
                return
            files = self._waiting.pop(run_id)
            self._last_commit[run_id] = time.monotonic()
        try:
            self._ensure_repo()
            future = self._api.create_commit(self.repo_id, self._operations(files), repo_type="model",
                                             commit_message=f"run {run_id}: {', '.join(sorted(files))}",
                                             run_as_future=True)
        except BaseException:
            with self._lock:  # not sent: keep what no newer put replaced
                self._waiting[run_id] = {**files, **self._waiting.get(run_id, {})}
            raise
        with self._lock:
            self._inflight[run_id] = future

    def flush(self) -> None:
        """Wait for the uploads put started, then send what is still waiting in one commit; HubError naming
        every failure since the last flush."""
        with self._lock:
            pending = dict(self._inflight)
        for run_id, future in pending.items():
            try:
                future.result(timeout=self.transfer_timeout_s)
            except TimeoutError:
                self._errors.append(f"the upload for run {run_id} did not finish within {self.transfer_timeout_s:g} s")
            except Exception:  # noqa: BLE001 - reported by _reap below
                pass
            with self._lock:
                self._reap(run_id)
                self._inflight.pop(run_id, None)
        with self._lock:
            files = {path: data for waiting in self._waiting.values() for path, data in waiting.items()}
            self._waiting.clear()
        if files:
            try:
                self._ensure_repo()
                self._call("upload", self._api.create_commit, self.repo_id, self._operations(files),
                           repo_type="model", commit_message=f"{len(files)} run files",
                           timeout_s=self.transfer_timeout_s)
            except (HubError, _Absent) as exc:
                self._errors.append(str(exc))
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise HubError("; ".join(errors))

    def get(self, run_id: str, name: str) -> bytes | None:
        """The bytes of ``runs/<run_id>/<name>``, or None when it is not on the Hub."""
        path = _path(run_id, name)
        try:
            local = self._call(f"download {path}", self._api.hf_hub_download, self.repo_id, path,
                               repo_type="model", cache_dir=data_dir() / "hub_cache" / ".hf")
        except _Absent:
            return None
        return Path(local).read_bytes()

    # ---- models ----------------------------------------------------------------------------------------

    def put_model_dir(self, run_id: str, model_dir: Path, card: str | None = None) -> None:
        """Upload a model (``model.json``, ``model.pt`` and its card as ``README.md``) in one commit, waiting."""
        model_dir = Path(model_dir)
        try:
            meta = ModelMeta.read(model_dir)
            files = {_path(run_id, f"model/{name}"): (model_dir / name).read_bytes() for name in MODEL_FILES}
        except (ModelLoadError, OSError) as exc:
            raise HubError(f"{model_dir} is not a model to push: {exc}") from None
        files[_path(run_id, f"model/{CARD}")] = (card if card is not None else model_card(meta, run_id)).encode()
        self._ensure_repo()
        try:
            self._call(f"push the model of run {run_id}", self._api.create_commit, self.repo_id,
                       self._operations(files), repo_type="model", commit_message=f"model of run {run_id}",
                       timeout_s=self.transfer_timeout_s)
        except _Absent:
            raise HubError(f"the model of run {run_id} could not be pushed") from None

    def get_model_dir(self, run_id: str, dest: Path) -> Path:
        """The run's model in ``dest`` (downloaded once, then reused), checked readable before it is kept."""
        dest = Path(dest)
        if all((dest / name).is_file() for name in MODEL_FILES):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".download-"))
        try:
            for name in MODEL_FILES:
                try:
                    local = self._call(f"download the model of run {run_id}", self._api.hf_hub_download,
                                       self.repo_id, _path(run_id, f"model/{name}"), repo_type="model",
                                       local_dir=staging / "repo", timeout_s=self.transfer_timeout_s)
                except _Absent:
                    raise HubError(f"run {run_id} has no model on the Hub ({name} is missing)") from None
                shutil.move(str(local), staging / name)
            try:
                ModelMeta.read(staging)
            except ModelLoadError as exc:
                raise HubError(f"the Hub copy of run {run_id}'s model cannot be read: {exc}") from None
            shutil.rmtree(staging / "repo", ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            staging.replace(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def list_models(self) -> list[str]:
        """Run ids with a model (``model.json`` and ``model.pt``) on the Hub, sorted."""
        files = set(self._call(f"list {self.repo_id}", self._api.list_repo_files, self.repo_id, repo_type="model"))
        ids = {parts[1] for parts in (f.split("/") for f in files)
               if len(parts) == 4 and parts[0] == "runs" and parts[2] == "model" and parts[3] == META}
        return sorted(i for i in ids if f"runs/{i}/model/{WEIGHTS}" in files and _RUN_ID.fullmatch(i))

    def delete_run(self, run_id: str) -> None:
        """Delete ``runs/<run_id>/`` (nothing there is not an error); what was waiting for it is dropped."""
        path = _path(run_id, "x").rsplit("/", 1)[0]
        with self._lock:
            self._waiting.pop(run_id, None)
            future = self._inflight.pop(run_id, None)
        if future is not None:  # a commit landing after the delete would bring files back
            try:
                future.result(timeout=self.timeout_s)
            except Exception:  # noqa: BLE001 - the files go anyway
                pass
        try:
            self._call(f"delete {path}", self._api.delete_folder, path, self.repo_id, repo_type="model",
                       commit_message=f"delete run {run_id}")
        except _Absent:
            pass


def hub_from_config(config: dict) -> HubRunStore | None:
    """The store for ``HF_TOKEN`` and ``HF_REPO_ID``; None when either is not set."""
    token, repo_id = config.get("HF_TOKEN"), config.get("HF_REPO_ID")
    if not token or not repo_id:
        return None
    return HubRunStore(str(repo_id).strip(), str(token))


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "n/a"


def model_card(meta: ModelMeta, run_id: str) -> str:
    """The model card (``README.md``): architecture, prior, Q grid, resolution and test metrics."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(library_name="reflect-ml", tags=["neutron-reflectometry", "sld-profile", meta.model.arch])
    metrics = meta.metrics or {}
    model, baseline = metrics.get("model") or {}, metrics.get("baseline") or {}
    rows = [("SLD RMSE (10⁻⁶ Å⁻²)", "rmse"), ("SLD MAE (10⁻⁶ Å⁻²)", "mae"), ("R²", "r2"),
            ("NR from profile, median abs Δlog₁₀R (decades)", "nr_decades_median")]
    table = "\n".join(f"| {label} | {_number(model.get(key))} | {_number(baseline.get(key))} |" for label, key in rows)
    prior = meta.prior or {}
    layers = len((prior.get("film") or {}).get("layers") or [])
    lines = [
        f"# Reflectometry model, run {run_id}", "",
        "Predicts a scattering length density (SLD) profile from a neutron reflectivity curve.", "",
        f"- Architecture: `{meta.model.arch}` ({meta.parameters or 0:,} parameters)",
        f"- Settings: `{json.dumps(meta.model.to_dict(), sort_keys=True)}`",
        f"- Prior: {layers} layers, {len(prior.get('bounds') or [])} bounds" if prior else "- Prior: none recorded",
        f"- Q grid: {meta.q.size} points, {meta.q.min():.4g}–{meta.q.max():.4g} Å⁻¹",
        f"- Resolution: dQ/Q = {100 * meta.dq:.3g} % FWHM; beam from the {meta.beam_from}",
        f"- Profile grid: {meta.z.size} points, {meta.z.min():.0f}–{meta.z.max():.0f} Å", "",
        "## Test metrics", "",
        f"Held-out test set of {metrics.get('n_test', 'n/a')} curves; baseline: the mean training profile.", "",
        "| metric | model | baseline |", "| --- | --- | --- |", table if metrics else "| (none) | n/a | n/a |",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))
