"""pyreflect's CNN weights (.pth/.pt) and normalisation stats (.npy/.json), and importing
them as a model directory in our format.

Guards against: weights that run code or do not fit pyreflect's CNN (see ``weights``),
checking weights without pyreflect installed, stats pickles that ask for anything but
numpy's array, dtype and number globals (a restricted unpickler; never ``np.load`` with
``allow_pickle``), stats that are not finite numbers in pyreflect's
``{"nr": {"x", "y"}, "sld": {"x", "y"}}`` layout or have empty ranges or wrong units,
and import grids of the wrong size or order. An import appears whole or not at all.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np

from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import MAX_WEIGHTS_BYTES, save_model
from reflect_core.ml.models import parameter_count
from reflect_core.ml.preprocess import R_FLOOR, Normalizer
from reflect_core.ml.settings import ModelError, settings_from_dict
from reflect_core.physics.simulate import PYREFLECT_DQ, PYREFLECT_NQ, PYREFLECT_QMAX, PYREFLECT_QMIN
from reflect_core.uploads.common import check_q_units, check_sld_units, error, new_directory, npy_header, short
from reflect_core.uploads.weights import fit_weights, load_state_dict

PYREFLECT_Q = np.geomspace(PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ)  # pyreflect's ReflectivityModel.q
PYREFLECT_Z_POINTS = 900


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


def pyreflect_weights(filename: str, data: bytes, max_bytes: int) -> tuple[dict, str]:
    """pyreflect CNN weights: ({layers, parameters}, description)."""
    _require_pyreflect(filename)
    state = load_state_dict(filename, "the weights file", data, max_bytes)
    model, settings = _fit_pyreflect(filename, state, None, 0.5)
    summary = {"layers": settings.layers, "parameters": parameter_count(model)}
    return summary, (f"pyreflect CNN weights: {settings.layers} convolution blocks, {summary['parameters']:,} "
                     f"parameters ({PYREFLECT_Q.size} Q points in, {PYREFLECT_Z_POINTS} z points out)")


# --- normalisation stats -------------------------------------------------------------------------------------------


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something outside the stats allowlist."""


_NDARRAY_STANDIN = object()  # numpy.ndarray as a pickle names it; not callable, so no pickle builds arrays itself
_PICKLE_DTYPES = {"O8", "O4", "f2", "f4", "f8", "i4", "i8"}


def _reconstruct(subtype, shape, typecode):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: the empty array a pickle then fills."""
    if subtype is not _NDARRAY_STANDIN or tuple(shape) != (0,) or typecode != b"b":
        raise _Refused("numpy _reconstruct with unusual arguments")
    return np.empty(0, dtype=np.int8)


def _dtype(spec, _align=False, _copy=True):  # the arguments numpy's pickles pass
    if spec not in _PICKLE_DTYPES:
        raise _Refused(f"numpy.dtype({str(spec)[:40]!r})")
    return np.dtype(spec, False, True)  # a copy: the pickle's state then changes it, never numpy's shared one


def _scalar(dtype, raw):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fi" or not isinstance(raw, bytes) \
            or len(raw) != dtype.itemsize:
        raise _Refused("a numpy scalar that is not a plain number")
    return np.frombuffer(raw, dtype=dtype)[0]


_STATS_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY_STANDIN,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
}


class _StatsUnpickler(pickle.Unpickler):
    """Rebuilds a 0-d object array holding a dict of numbers, and nothing else."""

    def find_class(self, module, name):
        try:
            return _STATS_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _stats_from_npy(filename: str, data: bytes):
    shape, _, dtype, offset = npy_header(filename, data)
    if not dtype.hasobject or shape != ():
        raise error(filename, f"not pyreflect normalisation stats: it holds a {dtype} array of shape {shape}, "
                              f"not a pickled dict")
    try:
        array = _StatsUnpickler(io.BytesIO(data[offset:])).load()
    except _Refused as exc:
        raise error(filename, f"refused: its pickle asks to load {exc}, and only numbers, dicts and numpy's "
                              f"array and number types are allowed") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways; each means unreadable
        raise error(filename, f"its pickled stats are unreadable ({short(exc)})") from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != ():
        raise error(filename, "not pyreflect normalisation stats: the pickle does not hold one object")
    return array.item()


def _stats_from_json(filename: str, data: bytes):
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(filename, f"not valid JSON ({exc})") from None


def _stats_number(filename: str, raw, path: str) -> float:
    value = raw
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise error(filename, f"not pyreflect normalisation stats: no {path!r} (expected {{'nr': {{'x': "
                                  f"{{'min', 'max'}}, 'y': {{…}}}}, 'sld': {{…}}}})")
        value = value[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise error(filename, f"{path} must be a finite number, got {str(value)[:60]!r}")
    return float(value)


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
    """pyreflect normalisation stats (.npy pickle or .json): (stats, description)."""
    raw = _stats_from_npy(filename, data) if suffix == ".npy" else _stats_from_json(filename, data)
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
    state = load_state_dict(filename, "the weights file", weights_bytes, max_bytes)
    model, settings = _fit_pyreflect(filename, state, layers, dropout)
    z_span = np.linspace(stats["sld"]["x"]["min"], stats["sld"]["x"]["max"], PYREFLECT_Z_POINTS)
    q = _import_grid(filename, q, PYREFLECT_Q, PYREFLECT_Q.size, "Q")
    z = _import_grid(filename, z, z_span, PYREFLECT_Z_POINTS, "z")
    nr, sld = stats["nr"], stats["sld"]
    normalizer = Normalizer(log_r_min=nr["y"]["min"], log_r_max=nr["y"]["max"], sld_min=sld["y"]["min"],
                            sld_max=sld["y"]["max"], q_min=nr["x"]["min"], q_max=nr["x"]["max"],
                            z_min=sld["x"]["min"], z_max=sld["x"]["max"], r_floor=R_FLOOR)
    meta = ModelMeta(model=settings, q=q, z=z, dq=PYREFLECT_DQ, normalization=normalizer,
                     parameters=parameter_count(model), source={"kind": "pyreflect import", "weights": filename})
    out_dir = Path(out_dir)
    with new_directory(out_dir) as tmp:
        save_model(tmp, model, meta)
    return out_dir
