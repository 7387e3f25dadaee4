"""Our model directories (model.json + model.pt) uploaded as a zip, and unpacking one.

Guards against: unsafe zips (see ``common.safe_zip_members``), zips without exactly one
model.json and one model.pt side by side, a model.json whose settings, grids or
normalisation ``load_model`` could not use (missing fields, non-finite or wrong-unit
grids, empty normalisation ranges), and weights that run code or do not fit the declared
network (see ``weights``). Unpacking runs every check again and writes only the two
files, into a new directory that appears whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from reflect_core.ml.meta import META, ModelLoadError, ModelMeta
from reflect_core.ml.model_store import WEIGHTS
from reflect_core.ml.models import parameter_count
from reflect_core.uploads.common import check_q_units, error, new_directory, safe_zip_members
from reflect_core.uploads.weights import fit_weights, load_state_dict


def _model_files(filename: str, members: dict[str, bytes]) -> tuple[bytes, bytes]:
    """model.json and model.pt, at the top of the zip or in one folder."""
    found = {wanted: [name for name in members if PurePosixPath(name).name == wanted] for wanted in (META, WEIGHTS)}
    if len(found[META]) != 1 or len(found[WEIGHTS]) != 1:
        raise error(filename, f"a model zip must hold one {META} and one {WEIGHTS}; this one has "
                              f"{len(found[META])} and {len(found[WEIGHTS])}")
    meta_name, weights_name = found[META][0], found[WEIGHTS][0]
    if PurePosixPath(meta_name).parent != PurePosixPath(weights_name).parent:
        raise error(filename, f"{META} and {WEIGHTS} must be in the same folder")
    return members[meta_name], members[weights_name]


def _model_meta(filename: str, raw: bytes) -> ModelMeta:
    """The zip's model.json as ``ModelMeta`` (every field checked as ``load_model`` will use it)."""
    try:
        meta = ModelMeta.from_dict(json.loads(raw), META)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ModelLoadError):
            raise error(filename, str(exc)) from None
        raise error(filename, f"{META} is not valid JSON ({exc})") from None
    check_q_units(filename, meta.q)
    return meta


def _check_model_files(filename: str, meta_raw: bytes, weights_raw: bytes, max_bytes: int):
    """(meta, model) of a model directory's two files, or UploadError."""
    meta = _model_meta(filename, meta_raw)
    state = load_state_dict(filename, WEIGHTS, weights_raw, max_bytes)
    return meta, fit_weights(filename, f"the weights in {WEIGHTS}", meta.model, meta.q.size, meta.z.size, state)


def model_zip(filename: str, data: bytes, max_bytes: int) -> tuple[ModelMeta, str]:
    """A model zip: (its metadata, description)."""
    meta_raw, weights_raw = _model_files(filename, safe_zip_members(filename, data, max_bytes))
    meta, model = _check_model_files(filename, meta_raw, weights_raw, max_bytes)
    q = meta.q
    return meta, (f"{meta.model.arch} model: {parameter_count(model):,} parameters, {q.size} Q points "
                  f"({q.min():.4g}–{q.max():.4g} Å⁻¹) → {meta.z.size} z points")


def unpack_model_zip(filename: str, data: bytes, out_dir, max_bytes: int) -> Path:
    """An accepted model zip as a model directory (model.json + model.pt) that
    ``model_store.load_model`` reads; every check runs again, and only those two files are written."""
    meta_raw, weights_raw = _model_files(filename, safe_zip_members(filename, data, max_bytes))
    meta, _ = _check_model_files(filename, meta_raw, weights_raw, max_bytes)
    out_dir = Path(out_dir)
    with new_directory(out_dir) as tmp:
        meta.write(tmp)  # the validated object, in today's schema (older files are migrated)
        (tmp / WEIGHTS).write_bytes(weights_raw)
    return out_dir
