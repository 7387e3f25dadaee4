"""The one χ² of the app (contract, "chi²"):

    χ²_red = Σ_i ((R_i − R_fit,i) / dR_i)² / (N − p)

over the points with dR_i > 0 (all contrasts together: concatenate them), N = those points,
p = the number of free (varying) parameters; a tied parameter is not free, a plain prediction
has p = 0, a prediction with fitted scale and background p = 2. Undefined (None) when N ≤ p.
"""

from __future__ import annotations

import numpy as np


def used_points(dr) -> np.ndarray:
    """The points that count: dR > 0 (a zero or negative uncertainty says "not measured")."""
    dr = np.asarray(dr, dtype=float)
    return np.isfinite(dr) & (dr > 0)


def chi2(r, r_fit, dr) -> tuple[float, int]:
    """(Σ ((R − R_fit)/dR)², N) over the points with dR > 0."""
    r, r_fit, dr = (np.asarray(a, dtype=float).ravel() for a in (r, r_fit, dr))
    if not r.shape == r_fit.shape == dr.shape:
        raise ValueError(f"R, R_fit and dR differ in length: {r.size}, {r_fit.size}, {dr.size}")
    used = used_points(dr)
    residuals = (r[used] - r_fit[used]) / dr[used]
    return float(np.dot(residuals, residuals)), int(used.sum())


def chi2_reduced(r, r_fit, dr, n_free: int = 0) -> float | None:
    """χ²_red as defined above; None when there are no more points than free parameters."""
    total, n = chi2(r, r_fit, dr)
    return total / (n - n_free) if n > n_free else None
