"""Loading .npy arrays from outside: no pickle, size checked first, the file exactly as long
as its header says (nothing truncated, nothing trailing), shapes and values checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from reflect_core.base.errors import InvalidInput

MAX_ARRAY_BYTES = 2_000_000_000
MAX_NPY_HEADER = 10_000


class ArrayError(InvalidInput):
    """An array file that cannot be used; the message names the file and the reason."""


def load_npy(path, role: str, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ArrayError(f"{role} file {path}: {exc.strerror}") from None
    if size > max_bytes:
        raise ArrayError(f"{role} file {path}: {size:,} bytes is over the {max_bytes:,}-byte limit")
    _check_length(path, role, size)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ArrayError(f"{role} file {path}: refused ({exc}); object arrays and pickles are never loaded") from None
    except (OSError, EOFError) as exc:
        raise ArrayError(f"{role} file {path}: not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ArrayError(f"{role} file {path}: expected a numeric array, got dtype {getattr(array, 'dtype', '?')}")
    if not np.all(np.isfinite(array)):
        raise ArrayError(f"{role} file {path}: contains NaN or inf")
    return array


def _check_length(path: Path, role: str, size: int) -> None:
    """The file holds exactly its header and the numbers the header promises: a truncated file
    or bytes after the array (a second payload, a polyglot) are refused before ``np.load``."""
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0,
               (3, 0): npy_format.read_array_header_2_0}  # 3.0 differs from 2.0 only in the header's encoding
    try:
        with open(path, "rb") as handle:
            if handle.read(len(npy_format.MAGIC_PREFIX)) != npy_format.MAGIC_PREFIX:
                raise ArrayError(f"{role} file {path}: not a .npy file (it does not start with NumPy's header)")
            version = tuple(handle.read(2))
            if version not in readers:
                raise ArrayError(f"{role} file {path}: unsupported .npy format version {version}")
            shape, _, dtype = readers[version](handle, max_header_size=MAX_NPY_HEADER)
            offset = handle.tell()
    except ArrayError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ArrayError(f"{role} file {path}: its .npy header is unreadable ({exc})") from None
    if dtype.hasobject:
        return  # np.load refuses it below (allow_pickle=False), with its own message
    expected = offset + math.prod(shape) * dtype.itemsize
    if size < expected:
        raise ArrayError(f"{role} file {path}: truncated: its header promises {expected:,} bytes, the file has "
                         f"{size:,}")
    if size > expected:
        raise ArrayError(f"{role} file {path}: {size - expected:,} bytes follow the array its header describes; "
                         f"refused")


def check_q_grid(q: np.ndarray) -> str | None:
    """Why a training Q grid cannot be used (duplicate or decreasing values), or None."""
    steps = np.diff(q)
    if np.all(steps > 0):
        return None
    k = int(np.argmax(steps <= 0))
    kind = "repeats" if steps[k] == 0 else "decreases"
    return (f"the Q grid must increase strictly: Q {kind} at point {k + 2} ({q[k]:.6g} then {q[k + 1]:.6g} Å⁻¹, "
            f"{int(np.sum(steps <= 0))} such step(s))")


def load_training_arrays(nr_path, sld_path):
    """NR (N, 2, L) and SLD (N, 2, M) in pyreflect format, checked against each other."""
    nr, sld = load_npy(nr_path, "NR"), load_npy(sld_path, "SLD")
    for name, array in (("NR", nr), ("SLD", sld)):
        if array.ndim != 3 or array.shape[1] != 2 or array.shape[2] < 2:
            raise ArrayError(f"{name} array must have shape (N, 2, points), got {array.shape}")
    if len(nr) != len(sld):
        raise ArrayError(f"NR has {len(nr)} curves but SLD has {len(sld)} profiles")
    if len(nr) < 10:
        raise ArrayError(f"{len(nr)} curves are too few to train (at least 10)")
    if np.any(nr[:, 0] <= 0):
        raise ArrayError("NR Q values must be > 0 Å⁻¹")
    if not (np.allclose(nr[:, 0], nr[0, 0]) and np.allclose(sld[:, 0], sld[0, 0])):
        raise ArrayError("all curves must share one Q grid and all profiles one z grid")
    if problem := check_q_grid(nr[0, 0]):
        raise ArrayError(f"NR array: {problem}")
    return nr.astype(np.float32, copy=False), sld.astype(np.float32, copy=False)
