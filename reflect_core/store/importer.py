"""Importing records: our bundles (.zip) and JSON exports, and pyreflect-interface
exports ``{"params", "result"}``. What is imported becomes a new record owned by the
importer; nothing is kept unless every check passes, and an import that fails half-way
removes what it wrote.

A bundle's files are checked in memory before any is written: its model with the upload
checks (``uploads.model_zip``: size from the settings, weights that store what they declare,
a network that builds), its training arrays from their headers. They land in the importing
user's own folder (``history/imports/<user>/``), and no path read from a file survives: the
model.json written has no ``data_folder``, and a dataset naming an upload folder outside the
importer's own uploads loses that name. Every refusal is an ``UploadError`` without server paths.
"""

from __future__ import annotations

import math
import secrets
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

from reflect_core.accounts.access import User, validate_username
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.ml.meta import SCORES, ModelMeta
from reflect_core.physics.film import FilmError, film_from_dict
from reflect_core.store import history
from reflect_core.store.bundles import BUNDLE_RECORD, FOLDER_PARTS
from reflect_core.uploads import UploadError, safe_zip_members
from reflect_core.uploads.common import error, load_json, new_directory, npy_header
from reflect_core.uploads.model_zip import check_model_files, model_files, portable, write_model_dir

MAX_JSON_BYTES = 20_000_000
IMPORTS = "history/imports"
NUMERIC_SUMMARY = {"rmse", "baseline_rmse", "r2", "nr_decades", "parameters", "bytes"}  # formatted as numbers


def _parse_json(filename: str, data: bytes) -> dict:
    if len(data) > MAX_JSON_BYTES:
        raise UploadError(f"{filename}: {len(data):,} bytes is over the {MAX_JSON_BYTES:,}-byte limit for JSON")
    parsed = load_json(filename, data)
    if not isinstance(parsed, dict):
        raise UploadError(f"{filename}: expected a JSON object (a record or a pyreflect export)")
    return parsed


def _name(given, filename: str, default: str) -> str:
    """The record's name: ``given``, else the file's stem, else ``default`` (names empty after stripping skip)."""
    for candidate in (given, PurePosixPath(filename.replace("\\", "/")).stem):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:80]
    return default


def _add(user: User, filename: str, kind: str, name: str, params: dict, summary: dict, files: str | None = None):
    try:
        return history.add(user, kind, history.unique_name(user, name), params, summary, files=files, run_id=None)
    except (ValueError, RecursionError, history.HistoryError) as exc:  # InvalidInput is a ValueError
        raise UploadError(f"{filename}: {exc}") from None


def _from_pyreflect_export(user: User, filename: str, export: dict) -> dict:
    try:
        film = film_from_dict(export)
    except FilmError as exc:
        raise UploadError(f"{filename}: its params.layers are not a valid film: {str(exc)[:300]}") from None
    except (ValueError, OverflowError, RecursionError):
        raise UploadError(f"{filename}: its params.layers hold a number too long or too large for a film") from None
    params = export["params"]
    result = export.get("result") if isinstance(export.get("result"), dict) else {}
    return _add(user, filename, "import", _name(None, filename, "pyreflect export"),
                {"film": film.to_dict(), "generator": params.get("generator"), "training": params.get("training")},
                {"source": "pyreflect interface export", "metrics": result.get("metrics")})


def _own_paths(user: User, params: dict) -> dict:
    """``params`` with a dataset's upload folder kept only if it is one of the importer's own uploads."""
    dataset = params.get("dataset")
    if isinstance(dataset, dict) and "arrays" in dataset:
        own = PurePosixPath("uploads", validate_username(user.name))
        folder = dataset["arrays"]
        parts = PurePosixPath(folder).parts if isinstance(folder, str) else ()
        if not (len(parts) > len(own.parts) and PurePosixPath(*parts[:len(own.parts)]) == own
                and ".." not in parts and "." not in parts):
            params = {**params, "dataset": {**dataset, "arrays": None}}
    return params


def _number_or_none(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value))


def _plain_summary(summary) -> dict:
    """What the history page lists of a record's summary, each of the type it formats: the
    numbers as finite numbers, ``agreement`` as an object of numbers, the rest plain text or values."""
    if not isinstance(summary, dict):
        return {}
    kept = {}
    for key, value in summary.items():
        if key == "agreement":
            if isinstance(value, dict):
                kept[key] = {str(k): v for k, v in value.items() if _number_or_none(v)}
        elif key in NUMERIC_SUMMARY:
            if _number_or_none(value):
                kept[key] = value
        elif isinstance(value, str | bool) or _number_or_none(value):
            kept[str(key)] = value
    return kept


def _comparable(files: str | None, meta: ModelMeta | None) -> bool:
    """Whether a model is complete enough for the history page's comparison of training runs
    (losses per epoch, and every score of the model and the baseline's RMSE)."""
    scores = (meta.metrics or {}).get("model", {}) if meta is not None else {}
    return files is not None and meta is not None and meta.history is not None and all(
        key in scores for key in SCORES)


def _from_record(user: User, filename: str, record: dict, files: str | None = None,
                 meta: ModelMeta | None = None) -> dict:
    if not isinstance(record.get("params"), dict):
        raise UploadError(f"{filename}: a record needs a 'params' object")
    kind = record.get("kind", "import")
    if kind not in history.KINDS:
        raise UploadError(f"{filename}: a record's kind is one of {', '.join(history.KINDS)}, not "
                          f"{str(kind)[:40]!r}")
    if kind == "training" and not _comparable(files, meta):
        kind = "import"  # a training record without its model (and its scores) is only its parameters
    summary = _plain_summary(record.get("summary"))
    if meta is not None:
        summary.update(meta.summary())  # derived from the checked model.json, never taken from the record
    return _add(user, filename, kind, _name(record.get("name"), filename, "imported record"),
                _own_paths(user, record["params"]), summary, files)


def import_json(user: User, filename: str, data: bytes) -> dict:
    parsed = _parse_json(filename, data)
    if "params" in parsed and "result" in parsed and "kind" not in parsed:
        return _from_pyreflect_export(user, filename, parsed)
    return _from_record(user, filename, parsed)


def _training_curves(filename: str, parts: dict[str, bytes]) -> int | None:
    """The number of curves of a bundle's training arrays (checked from their headers), or None without them."""
    counts = []
    for name in (NR_FILE, SLD_FILE):
        content = parts.get(f"data/{name}")
        if content is None:
            return None
        shape, _, dtype, offset = npy_header(f"{filename}: data/{name}", content)
        if (dtype.hasobject or dtype.kind != "f" or len(shape) != 3 or shape[0] < 1 or shape[1] != 2
                or len(content) - offset < math.prod(shape) * dtype.itemsize):
            raise error(filename, f"data/{name} is not a float array of shape (N, 2, points) as its header says")
        counts.append(shape[0])
    if counts[0] != counts[1]:
        raise error(filename, f"data/{NR_FILE} holds {counts[0]:,} curves but data/{SLD_FILE} {counts[1]:,}")
    return counts[0]


def _checked_model(filename: str, parts: dict[str, bytes], max_bytes: int):
    """(portable meta, weights bytes) of the bundle's model/ folder, or (None, None) without one."""
    if not any(name.startswith("model/") for name in parts):
        return None, None
    meta_raw, weights_raw = model_files(filename, parts, folder="model")
    meta, _ = check_model_files(filename, meta_raw, weights_raw, max_bytes)
    curves = _training_curves(filename, parts)
    if meta.test_index is not None and curves is None:
        meta = replace(meta, test_index=None)  # it indexes training arrays the bundle does not hold
    elif meta.test_index and max(meta.test_index) >= curves:
        raise error(filename, f"model.json's test_index goes past the {curves:,} curves of data/{NR_FILE}")
    return portable(meta), weights_raw


def _write_parts(filename: str, folder: Path, parts: dict[str, bytes]) -> None:
    """The bundle's data/ and results/ files under ``folder``, each checked to stay inside it."""
    root = folder.resolve()
    for name, content in parts.items():
        if name.startswith("model/"):
            continue  # only the checked model.json and model.pt are written, by write_model_dir
        path = (folder / name).resolve()
        if root not in path.parents:
            raise error(filename, f"bundle member {name!r} points outside its folder; refused")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def import_bundle(user: User, filename: str, data: bytes, max_bytes: int) -> dict:
    members = safe_zip_members(filename, data, max_bytes)  # name → bytes, after every zip check
    if BUNDLE_RECORD not in members:
        raise UploadError(f"{filename}: not a bundle of this app (no {BUNDLE_RECORD})")
    record = _parse_json(f"{filename}:{BUNDLE_RECORD}", members[BUNDLE_RECORD])
    parts = {name: content for name, content in members.items()
             if "/" in name and name.split("/", 1)[0] in FOLDER_PARTS}
    meta, weights_raw = _checked_model(filename, parts, max_bytes)
    _training_curves(filename, parts)
    if not parts:
        return _from_record(user, filename, record)
    relative = f"{IMPORTS}/{validate_username(user.name)}/{secrets.token_hex(6)}"
    target = data_dir() / relative
    try:
        with new_directory(target) as folder:
            if meta is not None:
                write_model_dir(folder / "model", meta, weights_raw)
            _write_parts(filename, folder, parts)
        return _from_record(user, filename, record, relative, meta)
    except BaseException as exc:
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, UploadError):
            raise UploadError(f"{filename}: could not be stored ({exc.strerror or type(exc).__name__})") from None
        raise
