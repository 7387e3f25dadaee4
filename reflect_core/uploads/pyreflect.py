"""pyreflect's CNN weights (.pth/.pt) and normalisation stats (.json/.npz), and importing
them as a model directory in our format.

Guards against: weights that run code, claim more numbers than they store or do not fit
pyreflect's CNN (see ``weights``), checking weights without pyreflect installed, and pickles:
nothing here unpickles. pyreflect saves its stats as a pickled .npy, and no allow-list makes a
pickle safe (numpy's own classes run C code with the file's values: a 264-byte file crashed
the server), so uploads take stats as .json or .npz (``np.load(allow_pickle=False)``, after
the zip checks) and refuse .npy with the way to convert it; only the command line reads
pyreflect's .npy, in a separate, resource-limited process (``pickled_stats``). Also refused:
stats that are not finite numbers in pyreflect's ``{"nr": {"x", "y"}, "sld": {"x", "y"}}``
layout, have empty ranges or wrong units, JSON nested too deeply, and import grids of the
wrong size or order. An import appears whole or not at all.
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import MAX_WEIGHTS_BYTES, save_model
from reflect_core.ml.preprocess import R_FLOOR, Normalizer
from reflect_core.ml.settings import ModelError, parameter_count_for, settings_from_dict
from reflect_core.physics.simulate import PYREFLECT_DQ, PYREFLECT_NQ, PYREFLECT_QMAX, PYREFLECT_QMIN
from reflect_core.uploads.common import (
    STATS_KEYS,
    UploadError,
    check_q_units,
    check_sld_units,
    check_zip_listing,
    error,
    load_json,
    new_directory,
    short,
)
from reflect_core.uploads.weights import MAX_PARAMETERS, fit_weights, load_state_dict

PYREFLECT_Q = np.geomspace(PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ)  # pyreflect's ReflectivityModel.q
PYREFLECT_Z_POINTS = 900
PYREFLECT_MAX_VALUES = MAX_PARAMETERS["pyreflect_cnn"] * 101 // 100  # its parameters and BatchNorm's statistics


def pyreflect_available() -> bool:
    return importlib.util.find_spec("pyreflect") is not None


def _require_pyreflect(filename: str) -> None:
    if not pyreflect_available():
        raise error(filename, "pyreflect weights need pyreflect installed to check and run them "
                              "(scripts/setup.sh installs it)")


# --- weights -------------------------------------------------------------------------------------------------------


def _pyreflect_blocks(filename: str, state: dict) -> int:
    """Convolution blocks in pyreflect's CNN: the 3-D ``layers.N.weight`` tensors."""
    blocks = sum(1 for key, value in state.items() if re.fullmatch(r"layers\.\d+\.weight", key) and value.ndim == 3)
    if blocks == 0:
        raise error(filename, f"does not look like pyreflect's CNN weights (no 'layers.N.weight' convolutions; "
                              f"keys start {', '.join(list(state)[:3])})")
    return blocks


def _fit_pyreflect(filename: str, state: dict, layers: int | None, dropout: float):
    """(model, settings): pyreflect's ``CNN(layers, dropout_prob)`` inside our PyreflectCNN, with ``state`` in it."""
    try:
        settings = settings_from_dict({"arch": "pyreflect_cnn", "layers": layers or _pyreflect_blocks(filename, state),
                                       "dropout": dropout})
    except ModelError as exc:
        raise error(filename, str(exc)) from None
    wrapped = {f"net.{key}": value for key, value in state.items()}  # PyreflectCNN holds pyreflect's CNN as .net
    return fit_weights(filename, "the weights", settings, PYREFLECT_Q.size, PYREFLECT_Z_POINTS, wrapped), settings


def _parameters(settings) -> int:
    # From the settings (equal to the built network's count, tests/test_upload_attacks.py), not the model: torch-free.
    return parameter_count_for(settings, PYREFLECT_Q.size, PYREFLECT_Z_POINTS)


def pyreflect_weights(filename: str, data: bytes, max_bytes: int) -> tuple[dict, str]:
    """pyreflect CNN weights: ({layers, parameters}, description)."""
    _require_pyreflect(filename)
    state = load_state_dict(filename, "the weights file", data, max_bytes, PYREFLECT_MAX_VALUES)
    _, settings = _fit_pyreflect(filename, state, None, 0.5)
    summary = {"layers": settings.layers, "parameters": _parameters(settings)}
    return summary, (f"pyreflect CNN weights: {settings.layers} convolution blocks, {summary['parameters']:,} "
                     f"parameters ({PYREFLECT_Q.size} Q points in, {PYREFLECT_Z_POINTS} z points out)")


# --- normalisation stats -------------------------------------------------------------------------------------------


STATS_PARTS, STATS_AXES, STATS_BOUNDS = ("nr", "sld"), ("x", "y"), ("min", "max")
MAX_STATS_BYTES = 1_000_000  # eight numbers; anything near this is not stats


def _stats_from_npz(filename: str, data: bytes) -> dict:
    """Eight numbers named ``nr_x_min`` … ``sld_y_max`` in an .npz, read without pickles."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise error(filename, "not a readable .npz file (np.savez writes a zip archive)") from None
    with archive:  # np.load inflates members: the same bomb checks as any zip first
        check_zip_listing(filename, archive.infolist(), MAX_STATS_BYTES, 64, "the .npz")
    stats = {part: {axis: {} for axis in STATS_AXES} for part in STATS_PARTS}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for part in STATS_PARTS:
                for axis in STATS_AXES:
                    for bound in STATS_BOUNDS:
                        key = f"{part}_{axis}_{bound}"
                        if key not in npz.files:
                            raise error(filename, f"not pyreflect normalisation stats: no {key!r} (an .npz needs "
                                                  f"the numbers {STATS_KEYS})")
                        value = npz[key]
                        if value.dtype.kind not in "fiu" or value.size != 1:
                            raise error(filename, f"{key} must be one number, got a {value.dtype} array of shape "
                                                  f"{value.shape}")
                        stats[part][axis][bound] = value.reshape(()).item()
    except ValueError as exc:  # an object array (allow_pickle=False refuses it), a damaged member
        if isinstance(exc, UploadError):
            raise
        raise error(filename, f"its .npz holds something other than plain numbers ({short(exc)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise error(filename, f"its .npz is damaged ({short(exc)})") from None
    return stats


def _stats_number(filename: str, raw, path: str) -> float:
    value = raw
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise error(filename, f"not pyreflect normalisation stats: no {path!r} (expected {{'nr': {{'x': "
                                  f"{{'min', 'max'}}, 'y': {{…}}}}, 'sld': {{…}}}})")
        value = value[key]
    number = math.nan
    if not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            pass
    if not math.isfinite(number):
        shown = f"{type(value).__name__} {str(value)[:60]!r}" if not isinstance(value, int) else "a huge integer"
        raise error(filename, f"{path} must be a finite number, got {shown}")
    return number


def check_pyreflect_stats(filename: str, raw) -> dict:
    """pyreflect's ``{"nr": {"x", "y"}, "sld": {"x", "y"}}`` min/max stats as plain floats, checked."""
    stats = {part: {axis: {bound: _stats_number(filename, raw, f"{part}.{axis}.{bound}") for bound in ("min", "max")}
                    for axis in ("x", "y")} for part in ("nr", "sld")}
    for part in stats:
        for axis, bounds in stats[part].items():
            if not bounds["max"] > bounds["min"]:
                raise error(filename, f"{part}.{axis}: max ({bounds['max']:g}) must be above min ({bounds['min']:g})")
    if stats["nr"]["x"]["min"] <= 0:
        raise error(filename, "nr.x (Q) must be > 0 Å⁻¹")
    check_q_units(filename, np.array([stats["nr"]["x"]["max"]]))
    check_sld_units(filename, np.array([stats["sld"]["y"]["min"], stats["sld"]["y"]["max"]]))
    return stats


def pyreflect_stats(filename: str, data: bytes, suffix: str) -> tuple[dict, str]:
    """pyreflect normalisation stats (.json or .npz; a pickled .npy is refused by ``check_basics``
    before this): (stats, description)."""
    if len(data) > MAX_STATS_BYTES:
        raise error(filename, f"{len(data):,} bytes is over the {MAX_STATS_BYTES:,}-byte limit for stats")
    raw = _stats_from_npz(filename, data) if suffix == ".npz" else load_json(filename, data)
    stats = check_pyreflect_stats(filename, raw)
    span = lambda part, axis: f"{stats[part][axis]['min']:.4g}–{stats[part][axis]['max']:.4g}"  # noqa: E731
    return stats, (f"pyreflect normalisation stats: Q {span('nr', 'x')} Å⁻¹, log10 R {span('nr', 'y')}, "
                   f"z {span('sld', 'x')} Å, SLD {span('sld', 'y')} × 10⁻⁶ Å⁻²")


# --- importing -----------------------------------------------------------------------------------------------------


def _import_grid(filename: str, values, default: np.ndarray, size: int, name: str) -> np.ndarray:
    grid = default if values is None else np.asarray(values, dtype=float)
    if grid.shape != (size,) or not np.all(np.isfinite(grid)) or not np.all(np.diff(grid) > 0):
        raise error(filename, f"pyreflect's CNN needs an increasing {name} grid of {size} finite points")
    return grid


def import_pyreflect_model(weights_bytes: bytes, stats: dict, out_dir, q=None, z=None, *, layers: int | None = None,
                           dropout: float = 0.5, filename: str = "pyreflect weights",
                           max_bytes: int = MAX_WEIGHTS_BYTES) -> Path:
    """A model directory in our format from pyreflect's CNN state dict and its normalisation stats.

    ``q`` defaults to pyreflect's grid (308 points, 0.0081014–0.19757 Å⁻¹), ``z`` to 900 points over
    the stats' z range; ``layers`` defaults to the number of blocks in the weights. The new
    directory appears whole or not at all, and never replaces an existing one.
    """
    _require_pyreflect(filename)
    stats = check_pyreflect_stats("normalisation stats", stats)
    state = load_state_dict(filename, "the weights file", weights_bytes, max_bytes, PYREFLECT_MAX_VALUES)
    model, settings = _fit_pyreflect(filename, state, layers, dropout)
    z_span = np.linspace(stats["sld"]["x"]["min"], stats["sld"]["x"]["max"], PYREFLECT_Z_POINTS)
    q = _import_grid(filename, q, PYREFLECT_Q, PYREFLECT_Q.size, "Q")
    z = _import_grid(filename, z, z_span, PYREFLECT_Z_POINTS, "z")
    nr, sld = stats["nr"], stats["sld"]
    normalizer = Normalizer(log_r_min=nr["y"]["min"], log_r_max=nr["y"]["max"], sld_min=sld["y"]["min"],
                            sld_max=sld["y"]["max"], q_min=nr["x"]["min"], q_max=nr["x"]["max"],
                            z_min=sld["x"]["min"], z_max=sld["x"]["max"], r_floor=R_FLOOR)
    meta = ModelMeta(model=settings, q=q, z=z, dq=PYREFLECT_DQ, normalization=normalizer,
                     parameters=_parameters(settings), source={"kind": "pyreflect import", "weights": filename})
    out_dir = Path(out_dir)
    with new_directory(out_dir) as tmp:
        save_model(tmp, model, meta)
    return out_dir
