"""Measured curves made ready for a fit: sorted by Q (stable, so overlapping angle segments keep
their repeated Q values), which points count (dR > 0), and the resolution each point uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflect_core.analysis.fit.stats import used_points
from reflect_core.base.errors import InvalidInput
from reflect_core.formats.curves import Curve
from reflect_core.physics.reflectivity import check_q


@dataclass(frozen=True)
class Prepared:
    name: str
    q: np.ndarray  # Å⁻¹, sorted
    r: np.ndarray
    dr: np.ndarray
    dq: np.ndarray | None  # FWHM in Å⁻¹ per point, the one the fit uses; None: no smearing
    dq_column: np.ndarray | None  # the file's own dQ column (sorted), as given
    used: np.ndarray  # dR > 0
    resolution: str  # says where dq came from, for the result's notes

    @property
    def n_used(self) -> int:
        return int(self.used.sum())


def own_resolution(curve: Curve) -> bool:
    """A dQ column that gives every point a width (the instrument's resolution); otherwise
    the configuration's dQ/Q is used (the same rule as analysis.measured.has_own_resolution)."""
    return curve.dq is not None and bool(np.all(np.asarray(curve.dq) > 0))


def prepare(curve: Curve, name: str, dq_fraction: float) -> Prepared:
    where = f"dataset {name!r}"
    if not isinstance(curve, Curve):
        raise InvalidInput(f"{where}: expected a Curve, got {type(curve).__name__}")
    if curve.r is None:
        raise InvalidInput(f"{where}: holds only Q values; a fit needs R and dR columns")
    if curve.dr is None:
        raise InvalidInput(f"{where}: has no dR column; a fit weighs each point by its uncertainty dR, "
                           "so it needs Q, R, dR (and optionally dQ)")
    check_q(curve.q)
    arrays = [np.asarray(a, dtype=float) for a in (curve.q, curve.r, curve.dr)]
    if any(a.shape != arrays[0].shape for a in arrays) or (curve.dq is not None and
                                                           np.shape(curve.dq) != arrays[0].shape):
        raise InvalidInput(f"{where}: Q, R, dR (and dQ) must have the same length")
    if not np.all(np.isfinite(arrays[1])):
        raise InvalidInput(f"{where}: R has non-finite values")
    curve = Curve(*arrays, None if curve.dq is None else np.asarray(curve.dq, dtype=float)).sorted()
    used = used_points(curve.dr)
    if not used.any():
        raise InvalidInput(f"{where}: no point has dR > 0; a fit needs uncertainties")
    if own_resolution(curve):
        dq, resolution = curve.dq, "its own dQ column (FWHM)"
    elif dq_fraction > 0:
        dq, resolution = dq_fraction * curve.q, f"dQ/Q = {dq_fraction:g} (FWHM) from the configuration"
    else:
        dq, resolution = None, "no resolution smearing (dq = 0)"
    return Prepared(name, curve.q, curve.r, curve.dr, dq, curve.dq, used, resolution)


def notes_for(data: list[Prepared]) -> list[str]:
    notes = []
    for d in data:
        skipped = d.q.size - d.n_used
        if skipped:
            notes.append(f"{d.name}: {skipped} of {d.q.size} points have dR ≤ 0 and are not used in the fit")
        notes.append(f"{d.name}: resolution from {d.resolution}")
    return notes
