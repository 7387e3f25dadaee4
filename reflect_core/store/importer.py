"""Importing records: our bundles (.zip) and JSON exports, and pyreflect-interface
exports ``{"params", "result"}``. What is imported becomes a new record owned by the
importer; nothing is kept unless every check passes."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

from reflect_core.accounts.access import User
from reflect_core.base.storage import data_dir
from reflect_core.ml.model_store import ModelLoadError, load_model
from reflect_core.physics.film import FilmError, film_from_dict
from reflect_core.store import history
from reflect_core.store.bundles import BUNDLE_RECORD, FOLDER_PARTS
from reflect_core.uploads import UploadError, safe_zip_members

MAX_JSON_BYTES = 20_000_000


def _parse_json(filename: str, data: bytes) -> dict:
    if len(data) > MAX_JSON_BYTES:
        raise UploadError(f"{filename}: {len(data):,} bytes is over the {MAX_JSON_BYTES:,}-byte limit for JSON")
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UploadError(f"{filename}: not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise UploadError(f"{filename}: expected a JSON object (a record or a pyreflect export)")
    return parsed


def _from_pyreflect_export(user: User, filename: str, export: dict) -> dict:
    try:
        film = film_from_dict(export)
    except FilmError as exc:
        raise UploadError(f"{filename}: its params.layers are not a valid film: {exc}") from None
    params = export["params"]
    result = export.get("result") if isinstance(export.get("result"), dict) else {}
    return history.add(user, "import", Path(filename).stem[:80] or "pyreflect export",
                       {"film": film.to_dict(), "generator": params.get("generator"),
                        "training": params.get("training")},
                       {"source": "pyreflect interface export", "metrics": result.get("metrics")})


def _from_record(user: User, filename: str, record: dict, files: str | None = None) -> dict:
    if not isinstance(record.get("params"), dict):
        raise UploadError(f"{filename}: a record needs a 'params' object")
    kind = record.get("kind") if record.get("kind") in history.KINDS else "import"
    if kind == "training" and files is None:
        kind = "import"  # a training record without its model is only its parameters
    summary = record.get("summary") if isinstance(record.get("summary"), dict) else {}
    try:
        return history.add(user, kind, str(record.get("name") or Path(filename).stem)[:80], record["params"],
                           summary, files=files, run_id=None)
    except (ValueError, history.HistoryError) as exc:
        raise UploadError(f"{filename}: {exc}") from None


def import_json(user: User, filename: str, data: bytes) -> dict:
    parsed = _parse_json(filename, data)
    if "params" in parsed and "result" in parsed and "kind" not in parsed:
        return _from_pyreflect_export(user, filename, parsed)
    return _from_record(user, filename, parsed)


def import_bundle(user: User, filename: str, data: bytes, max_bytes: int) -> dict:
    members = safe_zip_members(filename, data, max_bytes)  # name → bytes, after every zip check
    if BUNDLE_RECORD not in members:
        raise UploadError(f"{filename}: not a bundle of this app (no {BUNDLE_RECORD})")
    record = _parse_json(f"{filename}:{BUNDLE_RECORD}", members[BUNDLE_RECORD])
    relative = f"history/imports/{secrets.token_hex(6)}"
    target = data_dir() / relative
    try:
        for name, content in members.items():
            if name.split("/", 1)[0] in FOLDER_PARTS:
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        has_model = (target / "model").is_dir()
        if has_model:
            load_model(target / "model")  # weights_only: refuses anything but tensors of the declared shapes
        return _from_record(user, filename, record, relative if target.exists() else None)
    except (ModelLoadError, UploadError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise UploadError(f"{filename}: {exc}") from None
