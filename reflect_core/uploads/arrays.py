"""NR and SLD training arrays (.npy, shape (N, 2, points)), read from the bytes in memory.

Guards against: pickled object arrays (the numbers are read with ``np.frombuffer`` after
NumPy's header parser, never ``np.load``), non-float or wrongly shaped arrays, files
shorter than their header promises or with bytes after the array, NaN or infinite values,
curves or profiles on different grids, Q grids with repeated or decreasing values, and wrong
units (Q in nm⁻¹, log10 R, R in % or counts, SLD in Å⁻²; the R checks are the measured
curves', except that synthetic R is never negative).
"""

from __future__ import annotations

import math

import numpy as np

from reflect_core.formats.arrays import check_q_grid
from reflect_core.uploads.common import check_q_units, check_sld_units, error, npy_header
from reflect_core.uploads.curves import r_units_problem


def _pyreflect_array(filename: str, data: bytes, what: str, rows: str) -> np.ndarray:
    """A finite float array of shape (N, 2, points), checked from its header before any number is read."""
    shape, fortran, dtype, offset = npy_header(filename, data)
    if dtype.hasobject:
        raise error(filename, "holds Python objects (a pickled object array); only plain number arrays are "
                              "accepted, and pickles are never loaded")
    if dtype.kind != "f":
        raise error(filename, f"expected floating-point numbers, got {dtype}")
    if len(shape) != 3 or shape[0] < 1 or shape[1] != 2 or shape[2] < 2:
        raise error(filename, f"{what} must have shape (N, 2, points) with rows [{rows}], got {shape}")
    count = math.prod(shape)
    if len(data) - offset < count * dtype.itemsize:
        raise error(filename, f"is truncated: its header promises {count * dtype.itemsize:,} bytes of numbers, "
                              f"only {len(data) - offset:,} follow")
    if len(data) - offset > count * dtype.itemsize:
        raise error(filename, f"has {len(data) - offset - count * dtype.itemsize:,} bytes after the "
                              f"{count * dtype.itemsize:,} bytes of numbers its header promises; refused")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    array = flat.reshape(shape, order="F" if fortran else "C").copy()
    if not np.all(np.isfinite(array)):
        raise error(filename, f"contains NaN or infinite values ({int(np.sum(~np.isfinite(array))):,} of them)")
    return array


def _check_one_grid(filename: str, grids: np.ndarray, name: str, items: str, hint: str = "") -> None:
    if not np.allclose(grids, grids[0]):
        raise error(filename, f"the {items} do not share one {name} grid; all must use the same {name} values{hint}")


def nr_curves(filename: str, data: bytes) -> tuple[np.ndarray, str]:
    """An NR training-curves file: (array, description)."""
    nr = _pyreflect_array(filename, data, "NR curves", "Q, R")
    q, r = nr[:, 0], nr[:, 1]
    if np.any(q <= 0):
        raise error(filename, f"Q must be > 0 Å⁻¹; {int(np.sum(q <= 0)):,} values are ≤ 0")
    _check_one_grid(filename, q, "Q", "curves")
    if problem := check_q_grid(q[0]):
        raise error(filename, problem)
    check_q_units(filename, q[0])
    if problem := r_units_problem(r, negatives_allowed=False):
        raise error(filename, problem)
    return nr, f"{len(nr):,} NR curves on {q.shape[1]} Q points, {q[0].min():.4g}–{q[0].max():.4g} Å⁻¹"


def sld_profiles(filename: str, data: bytes) -> tuple[np.ndarray, str]:
    """An SLD training-profiles file: (array, description)."""
    sld = _pyreflect_array(filename, data, "SLD profiles", "z, SLD")
    z, rho = sld[:, 0], sld[:, 1]
    _check_one_grid(filename, z, "z", "profiles",
                    " (pyreflect's generator gives each profile its own z range: resample them onto one grid first)")
    check_sld_units(filename, rho)
    return sld, (f"{len(sld):,} SLD profiles on {z.shape[1]} z points, {z[0].min():.4g}–{z[0].max():.4g} Å, "
                 f"SLD {rho.min():.3g}–{rho.max():.3g} × 10⁻⁶ Å⁻²")
