"""Where each user's accepted uploads live (``uploads/<user>/``), and the models a user
can predict with. Every file here already passed ``uploads.validate_upload``."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from reflect_core.store import history
from reflect_core.accounts.access import User, validate_username
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.ml.model_store import META
from reflect_core.base.storage import atomic_write_bytes, atomic_write_json, data_dir
from reflect_core.uploads.checks import UploadError, import_pyreflect_model, save_accepted, unpack_model_zip

ARRAYS_INFO = "arrays.json"


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
    meta = json.loads((model_dir / META).read_text())
    relative = str(model_dir.parent.relative_to(data_dir()))
    return history.add(user, "import", name, {"model": meta.get("model"), "source": source},
                       {"source": source, "metrics": meta.get("metrics")}, files=relative)


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
