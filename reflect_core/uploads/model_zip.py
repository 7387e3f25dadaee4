"""Our model directories (model.json + model.pt) uploaded as a zip, and unpacking one.

Guards against: unsafe zips (see ``common.safe_zip_members``), zips without exactly one
model.json and one model.pt side by side, a model.json that is not JSON, nests too deeply or
has a field ``ModelMeta`` refuses (every field is type-checked, so an accepted model always
renders), networks whose settings declare more parameters than an upload may have (counted
from the settings before the weights are read), and weights that run code, claim more numbers
than they store, or do not fit the declared network (see ``weights``). Unpacking runs every
check again and writes only the two files, into a new directory that appears whole or not at
all; the model.json written carries no paths (``data_folder`` and a dataset's upload folder
mean nothing on another machine or for another user).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

from reflect_core.ml.meta import META, ModelLoadError, ModelMeta
from reflect_core.ml.model_store import WEIGHTS
from reflect_core.ml.settings import parameter_count_for
from reflect_core.uploads.common import check_q_units, error, load_json, new_directory, safe_zip_members
from reflect_core.uploads.weights import MAX_PARAMETERS, check_parameter_count, fit_weights, load_state_dict

MAX_META_UPLOAD_BYTES = 10_000_000  # two 100,000-point grids and a long history fit in 5 MB; parsing costs ~10×


def model_files(filename: str, members: dict[str, bytes], folder: str | None = None) -> tuple[bytes, bytes]:
    """model.json and model.pt, at the top of the zip or in one folder (``folder``, if given)."""
    found = {wanted: [name for name in members if PurePosixPath(name).name == wanted
                      and (folder is None or str(PurePosixPath(name).parent) == folder)] for wanted in (META, WEIGHTS)}
    if len(found[META]) != 1 or len(found[WEIGHTS]) != 1:
        raise error(filename, f"a model zip must hold one {META} and one {WEIGHTS}; this one has "
                              f"{len(found[META])} and {len(found[WEIGHTS])}")
    meta_name, weights_name = found[META][0], found[WEIGHTS][0]
    if PurePosixPath(meta_name).parent != PurePosixPath(weights_name).parent:
        raise error(filename, f"{META} and {WEIGHTS} must be in the same folder")
    return members[meta_name], members[weights_name]


def model_meta(filename: str, raw: bytes) -> ModelMeta:
    """A model.json as ``ModelMeta`` (every field checked as the pages and ``load_model`` will use it)."""
    if len(raw) > MAX_META_UPLOAD_BYTES:
        raise error(filename, f"{META} is {len(raw):,} bytes, over the {MAX_META_UPLOAD_BYTES:,}-byte limit")
    parsed = load_json(filename, raw, META)
    if isinstance(parsed, dict):
        parsed.pop("data_folder", None)  # a path on the machine that wrote it: meaningless here, never followed
    try:
        meta = ModelMeta.from_dict(parsed, META)
    except ModelLoadError as exc:
        raise error(filename, str(exc)) from None
    check_q_units(filename, meta.q)
    return meta


def portable(meta: ModelMeta) -> ModelMeta:
    """``meta`` without paths: no ``data_folder``, no upload folder in its dataset."""
    dataset = meta.dataset
    if dataset is not None and "arrays" in dataset:
        dataset = {**dataset, "arrays": None}
    return replace(meta, data_folder=None, dataset=dataset)


def check_model_files(filename: str, meta_raw: bytes, weights_raw: bytes, max_bytes: int):
    """(meta, model) of a model directory's two files, or UploadError. The network's size is
    checked from model.json before the weights are read; the model is built on torch's meta device
    around the uploaded tensors."""
    meta = model_meta(filename, meta_raw)
    check_parameter_count(filename, meta.model, meta.q.size, meta.z.size)
    limit = MAX_PARAMETERS[meta.model.arch]
    state = load_state_dict(filename, WEIGHTS, weights_raw, max_bytes, max_values=limit + limit // 100)
    return meta, fit_weights(filename, f"the weights in {WEIGHTS}", meta.model, meta.q.size, meta.z.size, state)


def model_zip(filename: str, data: bytes, max_bytes: int) -> tuple[ModelMeta, str]:
    """A model zip: (its metadata, description)."""
    meta_raw, weights_raw = model_files(filename, safe_zip_members(filename, data, max_bytes))
    meta, _ = check_model_files(filename, meta_raw, weights_raw, max_bytes)
    q = meta.q
    count = parameter_count_for(meta.model, q.size, meta.z.size)  # the built network's count, without torch
    return portable(meta), (f"{meta.model.arch} model: {count:,} parameters, {q.size} Q points "
                            f"({q.min():.4g}–{q.max():.4g} Å⁻¹) → {meta.z.size} z points")


def write_model_dir(out_dir, meta: ModelMeta, weights_raw: bytes) -> Path:
    """Checked model files as a new model directory (whole or not at all), its model.json without paths."""
    out_dir = Path(out_dir)
    with new_directory(out_dir) as tmp:
        portable(meta).write(tmp)  # the validated object, in today's schema (older files are migrated)
        (tmp / WEIGHTS).write_bytes(weights_raw)
    return out_dir


def unpack_model_zip(filename: str, data: bytes, out_dir, max_bytes: int) -> Path:
    """An accepted model zip as a model directory (model.json + model.pt) that
    ``model_store.load_model`` reads; every check runs again, and only those two files are written."""
    meta_raw, weights_raw = model_files(filename, safe_zip_members(filename, data, max_bytes))
    meta, _ = check_model_files(filename, meta_raw, weights_raw, max_bytes)
    return write_model_dir(out_dir, meta, weights_raw)
