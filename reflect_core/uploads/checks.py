"""Checking what users upload before anything is kept.

``validate_upload`` parses an upload in memory and returns what it holds, or raises
``UploadError`` naming the file and the reason; nothing is written until it passes
(``save_accepted``). No upload can run code here: .npy arrays are read without pickle;
pyreflect's pickled stats go through an unpickler that knows only numpy's array and
number globals; torch weights load with ``weights_only=True`` and must fit the declared
network; zip members are listed and checked (count, unpacked size, paths, links) before
any is read.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import pickle
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from numpy.lib import format as npy_format

from reflect_core.formats.curves import Curve, CurveError, parse_curve
from reflect_core.physics.film import Film, FilmError, film_from_json
from reflect_core.ml.model_store import MAX_WEIGHTS_BYTES, META, WEIGHTS, save_model
from reflect_core.ml.models import build_model, parameter_count
from reflect_core.ml.settings import ModelError, settings_from_dict
from reflect_core.ml.preprocess import R_FLOOR, Normalizer
from reflect_core.physics.simulate import PYREFLECT_DQ
from reflect_core.base.errors import InvalidInput

ROLES = {  # role → (what it is, in words; accepted extensions)
    "nr": ("an NR training-curves file", (".npy",)),
    "sld": ("an SLD training-profiles file", (".npy",)),
    "curve": ("a measured curve", (".txt", ".dat", ".csv", ".ort")),
    "film": ("a film", (".json",)),
    "model": ("a model", (".zip",)),
    "pyreflect_weights": ("a pyreflect weights file", (".pth", ".pt")),
    "pyreflect_stats": ("a pyreflect normalisation-stats file", (".npy", ".json")),
}

MAX_ZIP_MEMBERS = 1000
MAX_TORCH_RECORDS = 10_000  # torch.save writes one zip record per tensor storage
MAX_NPY_HEADER = 10_000  # numpy's own limit for headers it parses safely
MAX_NAME_CHARS = 100
Q_MAX_PLAUSIBLE = 1.0  # Å⁻¹: NR hardly ever goes past 0.5 Å⁻¹; the same grid in nm⁻¹ is 10× larger
R_MAX_PLAUSIBLE = 2.0  # R is 1 at total reflection; far above means % or counts
SLD_SI_MAX = 1e-3  # every |SLD| below this (not all zero) means Å⁻², not 10⁻⁶ Å⁻²
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
ORSO_Q_UNITS = {"1/angstrom": 1.0, "1/nm": 0.1}  # factor to Å⁻¹
PYREFLECT_Q = np.geomspace(0.0081, 0.1975, 308)  # pyreflect's ReflectivityModel.q
PYREFLECT_Z_POINTS = 900


class UploadError(InvalidInput):
    """An upload that is refused; the message names the file and the reason."""


def _error(filename: str, reason: str) -> UploadError:
    return UploadError(f"{filename}: {reason}")


def _short(exc: BaseException) -> str:
    """A library's exception on one short line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


@dataclass(frozen=True)
class Accepted:
    """An upload that passed every check: what it holds, and a line for the UI."""

    role: str
    filename: str
    content: object  # ndarray, Curve, Film, model.json dict, weights summary or stats dict, by role
    description: str


def validate_upload(filename: str, data: bytes, role: str, max_bytes: int) -> Accepted:
    """Every check for ``role`` on the bytes in memory; UploadError on the first that fails."""
    if role not in ROLES:
        raise ValueError(f"unknown upload role {role!r}; one of {', '.join(ROLES)}")
    label, extensions = ROLES[role]
    if len(data) > max_bytes:
        raise _error(filename, f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
    if not data:
        raise _error(filename, "the file is empty")
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in extensions:
        allowed = extensions[0] if len(extensions) == 1 else f"{', '.join(extensions[:-1])} or {extensions[-1]}"
        raise _error(filename, f"{label} must be a {allowed} file, not {suffix or 'a file without an extension'}")
    parsers = {
        "nr": lambda: _nr_curves(filename, data),
        "sld": lambda: _sld_profiles(filename, data),
        "curve": lambda: _measured_curve(filename, data, suffix),
        "film": lambda: _film(filename, data),
        "model": lambda: _model_zip(filename, data, max_bytes),
        "pyreflect_weights": lambda: _pyreflect_weights(filename, data, max_bytes),
        "pyreflect_stats": lambda: _pyreflect_stats(filename, data, suffix),
    }
    content, description = parsers[role]()
    return Accepted(role, filename, content, description)


# --- .npy arrays, never unpickled ----------------------------------------------------------------------------


def _npy_header(filename: str, data: bytes) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran order, dtype, offset of the numbers), from numpy's own safe header parser."""
    if not data.startswith(npy_format.MAGIC_PREFIX):
        raise _error(filename, "not a .npy file (it does not start with NumPy's header)")
    if len(data) < 12:
        raise _error(filename, "is truncated: too short to hold a .npy header")
    readers = {(1, 0): (npy_format.read_array_header_1_0, 2), (2, 0): (npy_format.read_array_header_2_0, 4)}
    version = (data[6], data[7])
    if version not in readers:
        raise _error(filename, f"unsupported .npy format version {version[0]}.{version[1]}")
    reader, length_bytes = readers[version]
    header_bytes = int.from_bytes(data[8:8 + length_bytes], "little")
    if header_bytes > MAX_NPY_HEADER:
        raise _error(filename, f"its .npy header claims {header_bytes:,} bytes; real ones are a few hundred, "
                               f"so it is refused")
    stream = io.BytesIO(data)
    stream.seek(8)
    try:
        shape, fortran, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)
    except Exception as exc:  # noqa: BLE001 - numpy's parser raises several kinds on garbage; each means unreadable
        raise _error(filename, f"its .npy header is unreadable ({_short(exc)})") from None
    return shape, fortran, dtype, stream.tell()


def _pyreflect_array(filename: str, data: bytes, what: str, rows: str) -> np.ndarray:
    """A finite float array of shape (N, 2, points), checked from its header before any number is read."""
    shape, fortran, dtype, offset = _npy_header(filename, data)
    if dtype.hasobject:
        raise _error(filename, "holds Python objects (a pickled object array); only plain number arrays are "
                               "accepted, and pickles are never loaded")
    if dtype.kind != "f":
        raise _error(filename, f"expected floating-point numbers, got {dtype}")
    if len(shape) != 3 or shape[0] < 1 or shape[1] != 2 or shape[2] < 2:
        raise _error(filename, f"{what} must have shape (N, 2, points) with rows [{rows}], got {shape}")
    count = math.prod(shape)
    if len(data) - offset < count * dtype.itemsize:
        raise _error(filename, f"is truncated: its header promises {count * dtype.itemsize:,} bytes of numbers, "
                               f"only {len(data) - offset:,} follow")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    array = flat.reshape(shape, order="F" if fortran else "C").copy()
    if not np.all(np.isfinite(array)):
        raise _error(filename, f"contains NaN or infinite values ({int(np.sum(~np.isfinite(array))):,} of them)")
    return array


def _check_one_grid(filename: str, grids: np.ndarray, name: str, items: str, hint: str = "") -> None:
    if not np.allclose(grids, grids[0]):
        raise _error(filename, f"the {items} do not share one {name} grid; all must use the same {name} values{hint}")


def _check_q_units(filename: str, q: np.ndarray) -> None:
    top = float(np.max(q))
    if top > Q_MAX_PLAUSIBLE:
        raise _error(filename, f"Q looks like it is not in Å⁻¹: it goes up to {top:.4g}, and neutron reflectivity "
                               f"hardly ever goes past 0.5 Å⁻¹ (is it in nm⁻¹?)")


def _check_sld_units(filename: str, sld: np.ndarray) -> None:
    top = float(np.max(np.abs(sld)))
    if 0 < top < SLD_SI_MAX:
        raise _error(filename, f"SLD looks like it is in Å⁻², expected 10⁻⁶ Å⁻² units (the largest |SLD| is "
                               f"{top:.3g}; silicon is 2.07)")


def _nr_curves(filename: str, data: bytes) -> tuple[np.ndarray, str]:
    nr = _pyreflect_array(filename, data, "NR curves", "Q, R")
    q, r = nr[:, 0], nr[:, 1]
    if np.any(q <= 0):
        raise _error(filename, f"Q must be > 0 Å⁻¹; {int(np.sum(q <= 0)):,} values are ≤ 0")
    _check_one_grid(filename, q, "Q", "curves")
    _check_q_units(filename, q[0])
    if np.any(r < 0):
        raise _error(filename, "R has negative values; expected linear reflectivity (not log10 R)")
    if r.max() > R_MAX_PLAUSIBLE:
        raise _error(filename, f"R goes up to {r.max():.4g}; expected reflectivity as a fraction (1 at total "
                               f"reflection), not % or counts")
    return nr, f"{len(nr):,} NR curves on {q.shape[1]} Q points, {q[0].min():.4g}–{q[0].max():.4g} Å⁻¹"


def _sld_profiles(filename: str, data: bytes) -> tuple[np.ndarray, str]:
    sld = _pyreflect_array(filename, data, "SLD profiles", "z, SLD")
    z, rho = sld[:, 0], sld[:, 1]
    _check_one_grid(filename, z, "z", "profiles",
                    " (pyreflect's generator gives each profile its own z range: resample them onto one grid first)")
    _check_sld_units(filename, rho)
    return sld, (f"{len(sld):,} SLD profiles on {z.shape[1]} z points, {z[0].min():.4g}–{z[0].max():.4g} Å, "
                 f"SLD {rho.min():.3g}–{rho.max():.3g} × 10⁻⁶ Å⁻²")


# --- measured curves and films ---------------------------------------------------------------------------------


def _measured_curve(filename: str, data: bytes, suffix: str) -> tuple[Curve, str]:
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often start CSV files with a byte-order mark
    except UnicodeDecodeError:
        raise _error(filename, "not a text file (it is not UTF-8)") from None
    curve = _orso_curve(filename, text) if suffix == ".ort" else _text_curve(filename, text)
    if curve.r is None:
        raise _error(filename, "has only a Q column; a measured curve needs Q and R (optionally dR and dQ)")
    if curve.q.size < 2:
        raise _error(filename, f"has {curve.q.size} data point; a curve needs at least 2")
    _check_q_units(filename, curve.q)
    extras = [name for name, column in (("dR", curve.dr), ("dQ", curve.dq)) if column is not None]
    return curve.sorted(), (f"measured curve: {curve.q.size} points, Q {curve.q.min():.4g}–{curve.q.max():.4g} Å⁻¹"
                            + (f", with {' and '.join(extras)}" if extras else ""))


def _text_curve(filename: str, text: str) -> Curve:
    try:
        return parse_curve(text, filename)
    except CurveError as exc:
        raise UploadError(str(exc)) from None  # parse_curve's message already names the file


def _orso_curve(filename: str, text: str) -> Curve:
    """The first four ORSO columns (Qz, R, sR, sQz), with Qz in Å⁻¹ and sQz as FWHM."""
    try:
        from orsopy.fileio import orso
    except ImportError:
        raise _error(filename, "reading ORSO .ort files needs orsopy, which is not installed") from None
    try:
        datasets = orso.load_orso(io.StringIO(text))  # YAML header through yaml.safe_load
    except Exception as exc:  # noqa: BLE001 - orsopy raises many kinds on malformed files; each means unreadable
        raise _error(filename, f"not a readable ORSO file ({_short(exc)})") from None
    if len(datasets) != 1:
        raise _error(filename, f"holds {len(datasets)} data sets (e.g. spin states); upload one per file")
    columns, table = datasets[0].info.columns, np.asarray(datasets[0].data, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] < 2 or len(columns) < 2:
        raise _error(filename, "has no data rows with Qz and R")
    if (columns[0].name, columns[1].name) != ("Qz", "R"):
        raise _error(filename, f"its first columns must be Qz and R (ORSO standard), got "
                               f"{columns[0].name} and {columns[1].name}")
    unit = getattr(columns[0], "unit", None)
    if unit not in ORSO_Q_UNITS:
        raise _error(filename, f"its Qz column is in {unit!r}; expected one of {', '.join(ORSO_Q_UNITS)}")
    table = table[:, :min(4, table.shape[1], len(columns))]
    if not np.all(np.isfinite(table)):
        raise _error(filename, "contains NaN or infinite values")
    q = table[:, 0] * ORSO_Q_UNITS[unit]
    if np.any(q <= 0):
        raise _error(filename, f"Qz must be > 0; {int(np.sum(q <= 0))} rows have Qz ≤ 0")
    dr = table[:, 2] if table.shape[1] > 2 else None
    dq = _orso_fwhm(filename, columns[3], table[:, 3] * ORSO_Q_UNITS[unit]) if table.shape[1] > 3 else None
    return Curve(q=q, r=table[:, 1], dr=dr, dq=dq)


def _orso_fwhm(filename: str, column, values: np.ndarray) -> np.ndarray:
    """ORSO resolution columns are 1-sigma unless they say FWHM; ours are FWHM."""
    if np.any(values < 0):
        raise _error(filename, "its sQz (resolution) column has negative values")
    return values if getattr(column, "value_is", None) == "FWHM" else values * FWHM_PER_SIGMA


def _film(filename: str, data: bytes) -> tuple[Film, str]:
    try:
        film = film_from_json(data)
    except FilmError as exc:
        raise _error(filename, str(exc)) from None
    except RecursionError:
        raise _error(filename, "its JSON is nested too deeply to be a film") from None
    _check_sld_units(filename, np.array([layer.sld for layer in film.layers]))
    name = f" {film.name!r}" if film.name else ""
    return film, f"film{name}: {len(film.layers)} layers, {film.total_thickness:g} Å between substrate and ambient"


# --- zip archives -------------------------------------------------------------------------------------------------


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member may not be read, or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "has a '..' path component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _check_zip_listing(filename: str, infos: list, max_bytes: int, max_members: int, what: str = "the zip") -> None:
    """Every check that needs only the listing: run before any member is decompressed."""
    if len(infos) > max_members:
        raise _error(filename, f"{what} has {len(infos):,} members, over the limit of {max_members:,}")
    for info in infos:
        reason = _unsafe_member(info)
        if reason:
            raise _error(filename, f"{what} member {info.filename!r} {reason}; refused")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _error(filename, f"{what} holds two members with the same name")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > max_bytes:
        raise _error(filename, f"{what} unpacks to {unpacked:,} bytes, over the {max_bytes:,}-byte limit "
                               f"(a zip bomb?)")


def _read_member(filename: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)  # never more than the listing promised
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise _error(filename, f"zip member {info.filename!r} is damaged ({exc})") from None
    if len(content) != info.file_size:
        raise _error(filename, f"zip member {info.filename!r} holds {len(content):,} bytes, not the "
                               f"{info.file_size:,} its listing says")
    return content


def safe_zip_members(filename: str, data: bytes, max_bytes: int) -> dict[str, bytes]:
    """Every file in a zip, name → bytes; members are read only after the whole listing passes
    (member count, unpacked total within ``max_bytes``, relative paths without '..', no links,
    no encryption)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _error(filename, f"not a readable zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
        _check_zip_listing(filename, infos, max_bytes, MAX_ZIP_MEMBERS)
        return {info.filename: _read_member(filename, archive, info) for info in infos if not info.is_dir()}


# --- torch weights ------------------------------------------------------------------------------------------------


def _load_state_dict(filename: str, label: str, raw: bytes, max_bytes: int) -> dict[str, torch.Tensor]:
    """A state dict of plain CPU tensors, unpickled only by torch's weights_only loader."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _error(filename, f"{label} is not a PyTorch weights file (torch.save writes a zip archive; "
                               f"files from PyTorch before 1.6 must be re-saved)") from None
    with archive:  # torch's own reader inflates records: the same bomb checks first
        _check_zip_listing(filename, archive.infolist(), max_bytes, MAX_TORCH_RECORDS, f"{label} archive")
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's restricted unpickler and reader raise many kinds
        raise _error(filename, f"{label} {_torch_refusal(exc)}") from None
    if not isinstance(state, dict):
        raise _error(filename, f"{label} holds a {type(state).__name__}, not a state dict (names → tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not _plain_tensor(value):
            kind = (f"a {value.dtype} {value.layout} tensor on {value.device}" if isinstance(value, torch.Tensor)
                    else f"{type(value).__name__} (a training checkpoint? save model.state_dict() alone)")
            raise _error(filename, f"{label} is not a state dict of plain tensors: {str(key)[:60]!r} holds {kind}")
    return state


def _plain_tensor(value) -> bool:
    """Dense CPU numbers, as a state dict of our networks holds (int64 only for BatchNorm's counter)."""
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
            and (value.is_floating_point() or value.dtype == torch.int64))


def _torch_refusal(exc: Exception) -> str:
    """torch's long weights_only message, in a line."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"asks to load {found.group(1)} when unpickled; refused (only tensors are loaded)"
    return f"is not a plain weights file ({_short(exc)})"


def _first_three(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _fit_problems(expected: dict, state: dict) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors, in words."""
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    wrong = [f"{name} is {list(state[name].shape)} but must be {list(tensor.shape)}"
             for name, tensor in expected.items() if name in state and state[name].shape != tensor.shape]
    problems = []
    if missing:
        problems.append(f"missing {_first_three(missing)}")
    if unexpected:
        problems.append(f"unexpected {_first_three(unexpected)}")
    if wrong:
        problems.append(_first_three(wrong))
    return problems


def _fit_weights(filename: str, label: str, settings, n_q: int, n_z: int, state: dict) -> torch.nn.Module:
    """The declared network with ``state`` in it; built on the meta device, so checking a
    155 M-parameter model allocates nothing but the weights already loaded."""
    try:
        with torch.device("meta"):
            model = build_model(settings, n_q, n_z)
    except ModelError as exc:
        raise _error(filename, str(exc)) from None
    problems = _fit_problems(model.state_dict(), state)
    if not problems:
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:  # whatever the name-and-shape comparison cannot see
            problems = [_short(exc)]
    if problems:
        raise _error(filename, f"{label} do not fit the {settings.arch} for {n_q} Q / {n_z} z points: "
                               f"{'; '.join(problems)}")
    for name, tensor in state.items():  # after the fit, so sizes are the architecture's, not the file's claim
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum(dtype=torch.float64)):
            raise _error(filename, f"{label} have NaN or infinite values (in {name})")
    return model


# --- our model directories ----------------------------------------------------------------------------------------


def _model_files(filename: str, members: dict[str, bytes]) -> tuple[bytes, bytes]:
    """model.json and model.pt, at the top of the zip or in one folder."""
    found = {wanted: [name for name in members if PurePosixPath(name).name == wanted] for wanted in (META, WEIGHTS)}
    if len(found[META]) != 1 or len(found[WEIGHTS]) != 1:
        raise _error(filename, f"a model zip must hold one {META} and one {WEIGHTS}; this one has "
                               f"{len(found[META])} and {len(found[WEIGHTS])}")
    meta_name, weights_name = found[META][0], found[WEIGHTS][0]
    if PurePosixPath(meta_name).parent != PurePosixPath(weights_name).parent:
        raise _error(filename, f"{META} and {WEIGHTS} must be in the same folder")
    return members[meta_name], members[weights_name]


def _check_grid(filename: str, key: str, values: np.ndarray) -> None:
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise _error(filename, f"{META}: '{key}' must be a list of at least 2 finite numbers")


def _model_meta(filename: str, raw: bytes):
    """(meta dict, model settings, Q grid, z grid), each field checked as load_model will use it."""
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _error(filename, f"{META} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _error(filename, f"{META} must be a JSON object")
    try:
        settings = settings_from_dict(meta["model"])
        q, z = (np.asarray(meta[key], dtype=float) for key in ("q", "z"))
        normalizer = Normalizer.from_dict(meta["normalization"])
    except KeyError as exc:
        raise _error(filename, f"{META} lacks the field {exc}") from None
    except (ModelError, TypeError, ValueError) as exc:
        raise _error(filename, f"{META}: {exc}") from None
    for key, grid in (("q", q), ("z", z)):
        _check_grid(filename, key, grid)
    if np.any(q <= 0):
        raise _error(filename, f"{META}: Q values must be > 0 Å⁻¹")
    _check_q_units(filename, q)
    if not all(math.isfinite(value) for value in normalizer.to_dict().values()):
        raise _error(filename, f"{META}: normalization values must be finite")
    if not (normalizer.log_r_max > normalizer.log_r_min and normalizer.sld_max > normalizer.sld_min):
        raise _error(filename, f"{META}: normalization log_r_max and sld_max must be above their minima")
    return meta, settings, q, z


def _check_model_files(filename: str, meta_raw: bytes, weights_raw: bytes, max_bytes: int):
    """(meta, model) of a model directory's two files, or UploadError."""
    meta, settings, q, z = _model_meta(filename, meta_raw)
    state = _load_state_dict(filename, WEIGHTS, weights_raw, max_bytes)
    return meta, _fit_weights(filename, f"the weights in {WEIGHTS}", settings, q.size, z.size, state)


def _model_zip(filename: str, data: bytes, max_bytes: int) -> tuple[dict, str]:
    meta_raw, weights_raw = _model_files(filename, safe_zip_members(filename, data, max_bytes))
    meta, model = _check_model_files(filename, meta_raw, weights_raw, max_bytes)
    q = np.asarray(meta["q"], dtype=float)
    return meta, (f"{meta['model']['arch']} model: {parameter_count(model):,} parameters, {q.size} Q points "
                  f"({q.min():.4g}–{q.max():.4g} Å⁻¹) → {len(meta['z'])} z points")


@contextmanager
def _new_directory(out_dir: Path):
    """A temporary folder beside ``out_dir`` that becomes ``out_dir`` only if the block succeeds."""
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; uploads never overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        yield tmp
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful replace


def unpack_model_zip(filename: str, data: bytes, out_dir, max_bytes: int) -> Path:
    """An accepted model zip as a model directory (model.json + model.pt) that
    ``model_store.load_model`` reads; every check runs again, and only those two files are written."""
    meta_raw, weights_raw = _model_files(filename, safe_zip_members(filename, data, max_bytes))
    _check_model_files(filename, meta_raw, weights_raw, max_bytes)
    out_dir = Path(out_dir)
    with _new_directory(out_dir) as tmp:
        (tmp / META).write_bytes(meta_raw)
        (tmp / WEIGHTS).write_bytes(weights_raw)
    return out_dir


# --- pyreflect's weights and statistics -------------------------------------------------------------------------


def pyreflect_available() -> bool:
    return importlib.util.find_spec("pyreflect") is not None


def _require_pyreflect(filename: str) -> None:
    if not pyreflect_available():
        raise _error(filename, "pyreflect weights need pyreflect installed to check and run them "
                               "(scripts/setup.sh installs it)")


def _pyreflect_blocks(filename: str, state: dict) -> int:
    """Convolution blocks in pyreflect's CNN: the 3-D ``layers.N.weight`` tensors."""
    blocks = sum(1 for key, value in state.items() if re.fullmatch(r"layers\.\d+\.weight", key) and value.ndim == 3)
    if blocks == 0:
        raise _error(filename, f"does not look like pyreflect's CNN weights (no 'layers.N.weight' convolutions; "
                               f"keys start {', '.join(list(state)[:3])})")
    return blocks


def _fit_pyreflect(filename: str, state: dict, layers: int | None, dropout: float):
    """(model, settings): pyreflect's ``CNN(layers, dropout_prob)`` inside our PyreflectCNN, with ``state`` in it."""
    try:
        settings = settings_from_dict({"arch": "pyreflect_cnn", "layers": layers or _pyreflect_blocks(filename, state),
                                       "dropout": dropout})
    except ModelError as exc:
        raise _error(filename, str(exc)) from None
    wrapped = {f"net.{key}": value for key, value in state.items()}  # PyreflectCNN holds pyreflect's CNN as .net
    return _fit_weights(filename, "the weights", settings, PYREFLECT_Q.size, PYREFLECT_Z_POINTS, wrapped), settings


def _pyreflect_weights(filename: str, data: bytes, max_bytes: int) -> tuple[dict, str]:
    _require_pyreflect(filename)
    state = _load_state_dict(filename, "the weights file", data, max_bytes)
    model, settings = _fit_pyreflect(filename, state, None, 0.5)
    summary = {"layers": settings.layers, "parameters": parameter_count(model)}
    return summary, (f"pyreflect CNN weights: {settings.layers} convolution blocks, {summary['parameters']:,} "
                     f"parameters ({PYREFLECT_Q.size} Q points in, {PYREFLECT_Z_POINTS} z points out)")


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
    shape, _, dtype, offset = _npy_header(filename, data)
    if not dtype.hasobject or shape != ():
        raise _error(filename, f"not pyreflect normalisation stats: it holds a {dtype} array of shape {shape}, "
                               f"not a pickled dict")
    try:
        array = _StatsUnpickler(io.BytesIO(data[offset:])).load()
    except _Refused as exc:
        raise _error(filename, f"refused: its pickle asks to load {exc}, and only numbers, dicts and numpy's "
                               f"array and number types are allowed") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways; each means unreadable
        raise _error(filename, f"its pickled stats are unreadable ({_short(exc)})") from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != ():
        raise _error(filename, "not pyreflect normalisation stats: the pickle does not hold one object")
    return array.item()


def _stats_from_json(filename: str, data: bytes):
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _error(filename, f"not valid JSON ({exc})") from None


def _stats_number(filename: str, raw, path: str) -> float:
    value = raw
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise _error(filename, f"not pyreflect normalisation stats: no {path!r} (expected {{'nr': {{'x': "
                                   f"{{'min', 'max'}}, 'y': {{…}}}}, 'sld': {{…}}}})")
        value = value[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise _error(filename, f"{path} must be a finite number, got {str(value)[:60]!r}")
    return float(value)


def check_pyreflect_stats(filename: str, raw) -> dict:
    """pyreflect's ``{"nr": {"x", "y"}, "sld": {"x", "y"}}`` min/max stats as plain floats, checked."""
    stats = {part: {axis: {bound: _stats_number(filename, raw, f"{part}.{axis}.{bound}") for bound in ("min", "max")}
                    for axis in ("x", "y")} for part in ("nr", "sld")}
    for part in stats:
        for axis, bounds in stats[part].items():
            if not bounds["max"] > bounds["min"]:
                raise _error(filename, f"{part}.{axis}: max ({bounds['max']:g}) must be above min ({bounds['min']:g})")
    if stats["nr"]["x"]["min"] <= 0:
        raise _error(filename, "nr.x (Q) must be > 0 Å⁻¹")
    _check_q_units(filename, np.array([stats["nr"]["x"]["max"]]))
    _check_sld_units(filename, np.array([stats["sld"]["y"]["min"], stats["sld"]["y"]["max"]]))
    return stats


def _pyreflect_stats(filename: str, data: bytes, suffix: str) -> tuple[dict, str]:
    raw = _stats_from_npy(filename, data) if suffix == ".npy" else _stats_from_json(filename, data)
    stats = check_pyreflect_stats(filename, raw)
    span = lambda part, axis: f"{stats[part][axis]['min']:.4g}–{stats[part][axis]['max']:.4g}"  # noqa: E731
    return stats, (f"pyreflect normalisation stats: Q {span('nr', 'x')} Å⁻¹, log10 R {span('nr', 'y')}, "
                   f"z {span('sld', 'x')} Å, SLD {span('sld', 'y')} × 10⁻⁶ Å⁻²")


def _import_grid(filename: str, values, default: np.ndarray, size: int, name: str) -> np.ndarray:
    grid = default if values is None else np.asarray(values, dtype=float)
    if grid.shape != (size,) or not np.all(np.isfinite(grid)) or not np.all(np.diff(grid) > 0):
        raise _error(filename, f"pyreflect's CNN needs an increasing {name} grid of {size} finite points")
    return grid


def import_pyreflect_model(weights_bytes: bytes, stats: dict, out_dir, q=None, z=None, *, layers: int | None = None,
                           dropout: float = 0.5, filename: str = "pyreflect weights",
                           max_bytes: int = MAX_WEIGHTS_BYTES) -> Path:
    """A model directory in our format from pyreflect's CNN state dict and its normalisation stats.

    ``q`` defaults to pyreflect's grid (308 points, 0.0081–0.1975 Å⁻¹), ``z`` to 900 points over
    the stats' z range; ``layers`` defaults to the number of blocks in the weights. The new
    directory appears whole or not at all, and never replaces an existing one.
    """
    _require_pyreflect(filename)
    stats = check_pyreflect_stats("normalisation stats", stats)
    state = _load_state_dict(filename, "the weights file", weights_bytes, max_bytes)
    model, settings = _fit_pyreflect(filename, state, layers, dropout)
    z_span = np.linspace(stats["sld"]["x"]["min"], stats["sld"]["x"]["max"], PYREFLECT_Z_POINTS)
    q = _import_grid(filename, q, PYREFLECT_Q, PYREFLECT_Q.size, "Q")
    z = _import_grid(filename, z, z_span, PYREFLECT_Z_POINTS, "z")
    nr, sld = stats["nr"], stats["sld"]
    normalizer = Normalizer(log_r_min=nr["y"]["min"], log_r_max=nr["y"]["max"], sld_min=sld["y"]["min"],
                            sld_max=sld["y"]["max"], q_min=nr["x"]["min"], q_max=nr["x"]["max"],
                            z_min=sld["x"]["min"], z_max=sld["x"]["max"], r_floor=R_FLOOR)
    meta = {"model": settings.to_dict(), "q": q.tolist(), "z": z.tolist(), "dq": PYREFLECT_DQ,
            "normalization": normalizer.to_dict(), "parameters": parameter_count(model),
            "source": {"kind": "pyreflect import", "weights": filename}}
    out_dir = Path(out_dir)
    with _new_directory(out_dir) as tmp:
        save_model(tmp, model, meta)
    return out_dir


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
