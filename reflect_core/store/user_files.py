"""Where each user's accepted uploads live (``uploads/<user>/``), how one is written
(a sanitised name, never overwriting), the training arrays and the models a user can predict
with, deleting either, and the storage each user uses against their quota. Every file here
already passed ``uploads.validate_upload``.

Measured curves, in their one canonical form, are ``store.user_curves``' (built on this module).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from reflect_core.accounts.access import User, validate_username
from reflect_core.accounts.limits import MB, LimitError, Limits
from reflect_core.base.errors import NotFound, ReflectError
from reflect_core.base.storage import atomic_write_bytes, atomic_write_json, data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.jobs.runfiles import all_runs
from reflect_core.ml.meta import META, ModelMeta
from reflect_core.ml.model_store import WEIGHTS
from reflect_core.store import history, records
from reflect_core.store.bundles import directory_size
from reflect_core.store.hub import hub_cache_dir
from reflect_core.uploads import UploadError, import_pyreflect_model, unpack_model_zip

ARRAYS_INFO = "arrays.json"
MAX_NAME_CHARS = 100
MAX_ORIGINAL_BYTES = 200 * MB  # the largest upload any profile allows
MODEL_SOURCES = ("uploaded model", "pyreflect weights")
STORED_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # what safe_filename makes


class QuotaError(LimitError):
    """A save that would take a user over their storage quota; the message says how much is used, the
    limit and the size of what was refused."""


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


# --- keeping an accepted upload --------------------------------------------------------------------------------


def safe_filename(filename: str) -> str:
    """The last path component, with characters outside [A-Za-z0-9._-] replaced and no leading dots."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", re.split(r"[\\/]", filename)[-1]).lstrip(".")
    stem, suffix = os.path.splitext(base)
    return stem[:MAX_NAME_CHARS] + suffix[:16] if stem else "upload"


def claim_free_name(folder: Path, name: str, directory: bool = False) -> Path:
    """Create an empty file (or folder) ``name`` (or ``stem-1.ext``, ``stem-2.ext``, …) that did not exist;
    O_EXCL (mkdir) makes the claim atomic, so two uploads of one name never overwrite each other."""
    stem, suffix = os.path.splitext(name)
    for n in range(10_000):
        candidate = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            if directory:
                os.mkdir(candidate, 0o700)
            else:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder}: no free name for {name}")


def save_accepted(user_dir, filename: str, data: bytes) -> Path:
    """Write an accepted upload into ``user_dir`` under a sanitised name, never overwriting:
    the bytes go to a temporary file first and replace the claimed name in one step."""
    folder = Path(user_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        target = claim_free_name(folder, safe_filename(filename))
        try:
            os.replace(tmp, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful replace
    return target


# --- storage used, and the quota ---------------------------------------------------------------------------------


def usage_bytes(user: User) -> int:
    """Bytes of every file that is the user's: ``uploads/<user>/`` (curves, arrays, models), their
    analyses (``history/analyses/<user>/``), their background fits (``fits/<user>/``, kept by
    ``analysis.fit_runs``), their runs (``runs/<id>/`` whose state names them the owner) and the folders
    of their history records (imports, saved fits). A file is counted once."""
    root, name = data_dir(), validate_username(user.name)
    tops = [root / "uploads" / name, root / "history" / "analyses" / name, root / "fits" / name]
    tops += [path for path, state in all_runs() if state.get("owner") == name]
    tops += [root / r["files"] for r in history.list_records(user) if r["owner"] == name and r.get("files")]
    seen, total = set(), 0
    for top in tops:
        for folder, _, files in os.walk(top):
            for file in files:
                try:
                    info = os.lstat(os.path.join(folder, file))
                except OSError:
                    continue  # deleted while counting
                if (info.st_dev, info.st_ino) not in seen and not os.path.islink(os.path.join(folder, file)):
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total


def _quota_error(user: User, limits: Limits, used: int, adding: int, what: str) -> QuotaError:
    return QuotaError([f"{what} ({human_bytes(adding)}) would not fit in {user.name}'s storage: "
                       f"{human_bytes(used)} of the {human_bytes(limits.storage_bytes)} allowed is used; "
                       f"delete curves, models, runs or analyses to make room"], limits)


def check_quota(user: User, limits: Limits, adding: int, what: str) -> int:
    """The user's usage now; QuotaError when ``adding`` more bytes would go over ``limits.storage_bytes``."""
    used = usage_bytes(user)
    if used + adding > limits.storage_bytes:
        raise _quota_error(user, limits, used, adding, what)
    return used


def _recheck_quota(user: User, limits: Limits | None, used: int, written: Path, what: str) -> None:
    """After unpacking (a zip's contents are larger than the zip): remove ``written`` if it did not fit."""
    added = directory_size(written) if limits is not None else 0
    if limits is not None and used + added > limits.storage_bytes:
        shutil.rmtree(written, ignore_errors=True)
        raise _quota_error(user, limits, used, added, what)


# --- users' folders -----------------------------------------------------------------------------------------------


def upload_dir(user: User, kind: str) -> Path:
    path = data_dir() / "uploads" / validate_username(user.name) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_array_pair(user: User, nr: tuple[str, bytes, tuple], sld: tuple[str, bytes, tuple],
                    limits: Limits | None = None) -> str:
    """A training set from two accepted uploads (name, bytes, shape); returns its folder
    relative to the data directory, the form a training spec names it by."""
    (nr_name, nr_bytes, nr_shape), (sld_name, sld_bytes, sld_shape) = nr, sld
    if nr_shape[0] != sld_shape[0]:
        raise UploadError(f"{nr_name} holds {nr_shape[0]} curves but {sld_name} holds {sld_shape[0]} profiles")
    if limits is not None:
        check_quota(user, limits, len(nr_bytes) + len(sld_bytes), f"{nr_name} + {sld_name}")
    folder = upload_dir(user, "arrays") / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder.mkdir()
    atomic_write_bytes(folder / NR_FILE, nr_bytes)
    atomic_write_bytes(folder / SLD_FILE, sld_bytes)
    atomic_write_json(folder / ARRAYS_INFO, {"nr": nr_name, "sld": sld_name, "curves": nr_shape[0],
                                             "q_points": nr_shape[2], "z_points": sld_shape[2],
                                             "uploaded": time.time()})
    return str(folder.relative_to(data_dir()))


def array_sets(user: User) -> list[tuple[str, dict]]:
    """(folder relative to the data directory, its info), newest first."""
    found = []
    for info in sorted(upload_dir(user, "arrays").glob(f"*/{ARRAYS_INFO}"), reverse=True):
        found.append((str(info.parent.relative_to(data_dir())), json.loads(info.read_text())))
    return found


# --- models ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredModel:
    record: dict
    model_dir: Path | None
    error: str | None  # why the model cannot be used; None when it can
    hub: bool = False  # on the Hub: model_dir is its cache here, filled by hub_model on first use


def _model_problem(model_dir: Path | None) -> str | None:
    if model_dir is None or not model_dir.is_dir():
        return "its model files are missing"
    try:
        ModelMeta.read(model_dir)
    except (ReflectError, OSError, ValueError) as exc:
        return str(exc)
    return None if (model_dir / WEIGHTS).is_file() else f"{WEIGHTS} is missing"


def models(user: User) -> list[StoredModel]:
    """Every record of the user (all, for an admin) that holds a model or should (an uploaded
    model, a completed training run), each with why it cannot be used, if it cannot."""
    found = []
    for record in history.list_records(user):
        if record["kind"] not in ("training", "import"):
            continue
        model_dir = data_dir() / record["files"] / records.MODEL_FOLDER if record.get("files") else None
        expected = (model_dir is not None and (model_dir / META).is_file()
                    or (record["kind"] == "import" and model_dir is not None and model_dir.is_dir())
                    or (record.get("params") or {}).get("source") in MODEL_SOURCES
                    or (record.get("summary") or {}).get("state") == "completed")
        if expected:
            found.append(StoredModel(record, model_dir, _model_problem(model_dir)))
    return found


def model_records(user: User) -> list[tuple[dict, Path]]:
    """Every record of the user (all, for an admin) with a usable model directory."""
    return [(m.record, m.model_dir) for m in models(user) if m.error is None]


def hub_models(user: User, listed) -> list[StoredModel]:
    """The user's training runs (everyone's, for an admin) whose model is on the Hub (``listed``: the run ids of
    ``HubRunStore.list_models``) and not usable here. Only runs of the user's own history records are listed."""
    listed, here = set(listed), {m.record.get("run_id") for m in models(user) if m.error is None}
    return [StoredModel(r, hub_cache_dir(r["run_id"]) / records.MODEL_FOLDER, None, hub=True)
            for r in history.list_records(user, kind="training") if r.get("run_id") in listed - here]


def hub_model(user: User, entry: StoredModel, hub) -> Path:
    """A Hub model's folder here (``HubError`` when it cannot be downloaded the first time)."""
    if history.find_by_run(user, entry.record["run_id"]) is None:
        raise NotFound(f"{user.name} has no run {entry.record['run_id']}")
    return hub.get_model_dir(entry.record["run_id"], hub_cache_dir(entry.record["run_id"]) / records.MODEL_FOLDER)


def delete_model(user: User, record_id: str, hub=None) -> str | None:
    """Delete a model's record and its files (a training record: its run too, and its Hub copy when ``hub`` is
    given); a message when the Hub copy remains."""
    return records.delete_record(user, record_id, hub=hub)


def _model_record(user: User, name: str, model_dir: Path, source: str) -> dict:
    meta = ModelMeta.read(model_dir)
    relative = str(model_dir.parent.relative_to(data_dir()))
    return history.add(user, "import", name, {"model": meta.model.to_dict(), "source": source},
                       {"source": source, "metrics": meta.metrics}, files=relative)


def add_model_zip(user: User, filename: str, data: bytes, max_bytes: int, limits: Limits | None = None) -> dict:
    used = check_quota(user, limits, len(data), filename) if limits is not None else 0
    target = upload_dir(user, "models") / secrets.token_hex(6)
    unpack_model_zip(filename, data, target / "model", max_bytes)
    return _keep_model(user, filename, target, used, limits, "uploaded model")


def add_pyreflect_model(user: User, filename: str, weights: bytes, stats: dict, limits: Limits | None = None) -> dict:
    used = check_quota(user, limits, len(weights), filename) if limits is not None else 0
    target = upload_dir(user, "models") / secrets.token_hex(6)
    import_pyreflect_model(weights, stats, target / "model")
    return _keep_model(user, filename, target, used, limits, "pyreflect weights")


def _keep_model(user: User, filename: str, target: Path, used: int, limits: Limits | None, source: str) -> dict:
    """The history record of a model just written to ``target``; the folder goes again if it cannot be kept."""
    try:
        _recheck_quota(user, limits, used, target, filename)
        return _model_record(user, Path(filename).stem.strip()[:80] or source, target / "model", source)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
