"""Gaussian resolution smearing as an accurate convolution.

R_smeared(q_i) = ∫ R(q) G(q - q_i; σ_i) dq, with σ_i = FWHM_i / (2√(2 ln 2)).

The integral is done on a fine grid whose spacing follows the local σ (a fixed
number of points per σ, so constant dQ/Q gives a log grid), truncated at
±N_SIGMA·σ, with trapezoid weights renormalised to one. The weights form a
sparse (Nq × Nfine) matrix built once per Q grid and reused for every film, so
smearing a batch is one kernel call on the fine grid plus one sparse product.
The defaults were chosen by measuring against a brute-force convolution
(tests/test_resolution.py): p99 error ≈ 0.1 %, max < 1 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numba

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
POINTS_PER_SIGMA = 3.0
N_SIGMA = 6.0
MIN_Q = 1e-6  # the kernel has no meaning at Q ≤ 0; tails are clipped here


def resolution_fwhm(q: np.ndarray, dq_rel: float = 0.0, dq_abs=None) -> np.ndarray:
    """Per-point FWHM in Å⁻¹ from a relative dQ/Q (fraction) or absolute per-point dQ."""
    q = np.asarray(q, dtype=float)
    if dq_abs is not None:
        dq = np.asarray(dq_abs, dtype=float)
        if dq.shape != q.shape:
            raise ValueError(f"dQ has {dq.shape} values but Q has {q.shape}")
        if not np.all(np.isfinite(dq)) or np.any(dq < 0):
            raise ValueError("dQ (FWHM, Å⁻¹) must be finite and ≥ 0 at every point")
        return dq
    if not math.isfinite(dq_rel) or dq_rel < 0:
        raise ValueError(f"dQ/Q must be a finite fraction ≥ 0, got {dq_rel!r}")
    return q * dq_rel


@dataclass(frozen=True)
class SmearingPlan:
    """Shared fine grid for one Q grid and resolution, and the outputs it feeds."""

    q: np.ndarray  # output Q, Å⁻¹
    sigma: np.ndarray  # Gaussian σ per output point, Å⁻¹ (0: no smearing there)
    q_fine: np.ndarray  # shared nodes

    @property
    def smeared(self) -> bool:
        return bool(np.any(self.sigma > 0))

    def nodes_for(self, stacks: np.ndarray) -> np.ndarray:
        """Per-film nodes (B, Nfine + EDGE_NODES): the shared grid plus a
        cluster at each film's critical edge, where R has a square-root kink
        that a uniform grid integrates poorly (measured: 3.6 % → 0.9 % max error)."""
        edges = critical_edge(stacks)
        inside = (edges > self.q_fine[0]) & (edges < self.q_fine[-1])
        sorted_q = np.argsort(self.q)
        edge_sigma = np.interp(np.where(inside, edges, self.q_fine[0]), self.q[sorted_q], self.sigma[sorted_q])
        extra = np.where(
            inside[:, None],
            edges[:, None] + edge_sigma[:, None] * EDGE_OFFSETS[None, :],
            self.q_fine[0],  # films without an edge get harmless duplicates
        )
        return _insert_sorted(self.q_fine, extra)

    def smear(self, nodes: np.ndarray, r_nodes: np.ndarray) -> np.ndarray:
        out = np.empty((r_nodes.shape[0], self.q.size))
        _smear(nodes, r_nodes, self.q, self.sigma, N_SIGMA, out)
        return out


EDGE_OFFSETS = np.array([-1 / 2, -1 / 4, -1 / 8, -1 / 16, -1 / 32, -1 / 64, 0.0,
                         1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2])


def critical_edge(stacks: np.ndarray) -> np.ndarray:
    """Q of total reflection at the substrate (beam frame), NaN where there is none."""
    contrast = stacks[:, 0, 0] - stacks[:, -1, 0]
    with np.errstate(invalid="ignore"):
        return np.where(contrast > 0, 4.0 * np.sqrt(np.pi * contrast * 1e-6), np.nan)


def _insert_sorted(base: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Merge a sorted shared row into each sorted row of ``extra``: (B, N + E)."""
    n_films, n_extra = extra.shape
    extra = np.sort(extra, axis=1)
    positions = np.searchsorted(base, extra) + np.arange(n_extra)
    merged = np.empty((n_films, base.size + n_extra))
    is_extra = np.zeros(merged.shape, dtype=bool)
    np.put_along_axis(is_extra, positions, True, axis=1)
    np.put_along_axis(merged, positions, extra, axis=1)
    merged[~is_extra] = np.tile(base, n_films)
    return merged


@numba.njit(parallel=True, cache=True)
def _smear(nodes, r_nodes, q, sigma, n_sigma, out):  # pragma: no cover - compiled
    # Trapezoid weights G(x_j - q_i) * cell_j over the ±n_sigma window,
    # renormalised to one; rows of ``nodes`` are sorted, one per film or shared.
    n_films, n_q = r_nodes.shape[0], q.size
    shared = nodes.shape[0] == 1
    for t in numba.prange(n_films * n_q):
        b = t // n_q
        i = t - b * n_q
        x = nodes[0] if shared else nodes[b]
        r = r_nodes[b]
        n = x.size
        s = sigma[i]
        if s == 0.0:
            out[b, i] = r[min(np.searchsorted(x, q[i]), n - 1)]
            continue
        lo = np.searchsorted(x, q[i] - n_sigma * s)
        hi = np.searchsorted(x, q[i] + n_sigma * s, side="right")
        total = 0.0
        norm = 0.0
        inv = 1.0 / s
        for j in range(lo, hi):
            left = x[j - 1] if j > 0 else x[j]
            right = x[j + 1] if j < n - 1 else x[j]
            u = (x[j] - q[i]) * inv
            w = math.exp(-0.5 * u * u) * (right - left)
            total += w * r[j]
            norm += w
        out[b, i] = total / norm if norm > 0.0 else r[min(lo, n - 1)]


def _fine_grid(q: np.ndarray, sigma: np.ndarray, points_per_sigma: float) -> np.ndarray:
    """Nodes whose spacing is σ(q)/points_per_sigma, covering every ±N_SIGMA·σ window."""
    order = np.argsort(q)
    qs, ss = q[order], sigma[order]
    lo = max(MIN_Q, float(np.min(q - N_SIGMA * sigma)))
    hi = float(np.max(q + N_SIGMA * sigma))
    # Spacing is interpolated between the output points and held beyond them.
    knots = np.concatenate(([lo], qs, [hi]))
    spacing = np.concatenate(([ss[0]], ss, [ss[-1]])) / points_per_sigma
    spacing = np.maximum(spacing, 1e-12)
    # u(q) = ∫ dq / h(q): integer values of u are the nodes.
    du = np.diff(knots) * 0.5 * (1.0 / spacing[:-1] + 1.0 / spacing[1:])
    u = np.concatenate(([0.0], np.cumsum(du)))
    n_nodes = int(math.ceil(u[-1])) + 1
    nodes = np.interp(np.linspace(0.0, u[-1], n_nodes), u, knots)
    # Drop nodes that fall in no window (gaps in sparse measured data).
    starts, ends = _merged_windows(qs - N_SIGMA * ss, qs + N_SIGMA * ss)
    k = np.searchsorted(starts, nodes, side="right") - 1
    keep = (k >= 0) & (nodes <= ends[np.clip(k, 0, None)])
    return nodes[keep]


def _merged_windows(starts: np.ndarray, ends: np.ndarray):
    order = np.argsort(starts)
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new = np.concatenate(([True], starts[1:] > ends[:-1]))
    group = np.cumsum(new) - 1
    merged_ends = np.zeros(group[-1] + 1)
    np.maximum.at(merged_ends, group, ends)
    return starts[new], merged_ends


def _build_plan(q: np.ndarray, fwhm: np.ndarray, points_per_sigma: float) -> SmearingPlan:
    sigma = fwhm * FWHM_TO_SIGMA
    sigma = np.where(sigma > 1e-9 * q, sigma, 0.0)
    smeared = sigma > 0
    if not np.any(smeared):
        return SmearingPlan(q=q, sigma=sigma, q_fine=np.unique(q))
    fine = _fine_grid(q[smeared], sigma[smeared], points_per_sigma)
    # Unsmeared points keep a delta kernel: their own Q becomes a node.
    return SmearingPlan(q=q, sigma=sigma, q_fine=np.union1d(fine, q[~smeared]))


@lru_cache(maxsize=32)
def _cached_plan(q_bytes: bytes, fwhm_bytes: bytes, points_per_sigma: float) -> SmearingPlan:
    q = np.frombuffer(q_bytes, dtype=np.float64)
    fwhm = np.frombuffer(fwhm_bytes, dtype=np.float64)
    return _build_plan(q, fwhm, points_per_sigma)


def smearing_plan(q, fwhm, points_per_sigma: float = POINTS_PER_SIGMA) -> SmearingPlan:
    """The plan for one Q grid and its FWHM (Å⁻¹); cached, since grids repeat."""
    q = np.ascontiguousarray(q, dtype=np.float64)
    fwhm = np.ascontiguousarray(np.broadcast_to(fwhm, q.shape), dtype=np.float64)
    return _cached_plan(q.tobytes(), fwhm.tobytes(), float(points_per_sigma))
