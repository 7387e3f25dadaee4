"""Where each user's accepted uploads live (``uploads/<user>/``), how one is written
(a sanitised name, never overwriting), and the models a user can predict with. Every file
here already passed ``uploads.validate_upload``."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from reflect_core.accounts.access import User, validate_username
from reflect_core.base.storage import atomic_write_bytes, atomic_write_json, data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.ml.meta import META, ModelMeta
from reflect_core.store import history
from reflect_core.uploads import UploadError, import_pyreflect_model, unpack_model_zip

ARRAYS_INFO = "arrays.json"
MAX_NAME_CHARS = 100


# --- keeping an accepted upload --------------------------------------------------------------------------------


def safe_filename(filename: str) -> str:
    """The last path component, with characters outside [A-Za-z0-9._-] replaced and no leading dots."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", re.split(r"[\\/]", filename)[-1]).lstrip(".")
    stem, suffix = os.path.splitext(base)
    return stem[:MAX_NAME_CHARS] + suffix[:16] if stem else "upload"


def _claim_free_name(folder: Path, name: str) -> Path:
    """Create an empty ``name`` (or ``stem-1.ext``, ``stem-2.ext``, …) that did not exist; O_EXCL makes the
    claim atomic, so two uploads of one name never overwrite each other."""
    stem, suffix = os.path.splitext(name)
    for n in range(10_000):
        candidate = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
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
        target = _claim_free_name(folder, safe_filename(filename))
        try:
            os.replace(tmp, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful replace
    return target


# --- users' folders -----------------------------------------------------------------------------------------------


def upload_dir(user: User, kind: str) -> Path:
    path = data_dir() / "uploads" / validate_username(user.name) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_array_pair(user: User, nr: tuple[str, bytes, tuple], sld: tuple[str, bytes, tuple]) -> str:
    """A training set from two accepted uploads (name, bytes, shape); returns its folder
    relative to the data directory, the form a training spec names it by."""
    (nr_name, nr_bytes, nr_shape), (sld_name, sld_bytes, sld_shape) = nr, sld
    if nr_shape[0] != sld_shape[0]:
        raise UploadError(f"{nr_name} holds {nr_shape[0]} curves but {sld_name} holds {sld_shape[0]} profiles")
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


def save_curve(user: User, filename: str, data: bytes) -> Path:
    return save_accepted(upload_dir(user, "curves"), filename, data)


def curves(user: User) -> list[Path]:
    return sorted((p for p in upload_dir(user, "curves").iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)


def _model_record(user: User, name: str, model_dir: Path, source: str) -> dict:
    meta = ModelMeta.read(model_dir)
    relative = str(model_dir.parent.relative_to(data_dir()))
    return history.add(user, "import", name, {"model": meta.model.to_dict(), "source": source},
                       {"source": source, "metrics": meta.metrics}, files=relative)


def add_model_zip(user: User, filename: str, data: bytes, max_bytes: int) -> dict:
    target = upload_dir(user, "models") / secrets.token_hex(6)
    unpack_model_zip(filename, data, target / "model", max_bytes)
    return _model_record(user, Path(filename).stem[:80], target / "model", "uploaded model")


def add_pyreflect_model(user: User, filename: str, weights: bytes, stats: dict) -> dict:
    target = upload_dir(user, "models") / secrets.token_hex(6)
    import_pyreflect_model(weights, stats, target / "model")
    return _model_record(user, Path(filename).stem[:80], target / "model", "pyreflect weights")


def model_records(user: User) -> list[tuple[dict, Path]]:
    """Every record of the user (all, for an admin) with a usable model directory."""
    found = []
    for record in history.list_records(user):
        if record.get("files"):
            model_dir = data_dir() / record["files"] / "model"
            if (model_dir / META).is_file():
                found.append((record, model_dir))
    return found
