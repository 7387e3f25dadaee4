"""Loading .npy arrays from outside: no pickle, size checked first, shapes and values checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput

MAX_ARRAY_BYTES = 2_000_000_000


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
    return nr.astype(np.float32, copy=False), sld.astype(np.float32, copy=False)
