"""Reflectivity of one film or a batch: kernel + resolution + scale and background."""

from __future__ import annotations

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import Film, films_to_array
from reflect_core.physics.kernel import parratt
from reflect_core.physics.resolution import POINTS_PER_SIGMA, resolution_fwhm, smearing_plan


class QError(InvalidInput):
    """A Q array that cannot be computed on."""


def check_q(q) -> np.ndarray:
    """Finite, strictly positive Q in Å⁻¹ (duplicates are fine: overlapping segments)."""
    q = np.asarray(q, dtype=float)
    if q.ndim != 1 or q.size == 0:
        raise QError(f"Q must be a non-empty 1-D array, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise QError(f"Q has {int(np.sum(~np.isfinite(q)))} non-finite values (NaN or inf)")
    if np.any(q <= 0):
        raise QError(f"Q must be > 0 Å⁻¹; {int(np.sum(q <= 0))} values are ≤ 0 (smallest {q.min():g})")
    return q


def as_stacks(films) -> np.ndarray:
    """A Film, a list of Films, or a (B, L, 4) / (L, 4) array → (B, L, 4) in the beam's frame."""
    if isinstance(films, Film):
        return films.beam_array()[None]
    if isinstance(films, (list, tuple)) and films and isinstance(films[0], Film):
        return films_to_array(films)
    stacks = np.asarray(films, dtype=float)
    return stacks[None] if stacks.ndim == 2 else stacks


def reflectivity(
    films,
    q,
    dq: float = 0.0,
    *,
    dq_abs=None,
    scale=1.0,
    background=0.0,
    points_per_sigma: float = POINTS_PER_SIGMA,
) -> np.ndarray:
    """R(Q) of each film, shape (B, Nq).

    ``dq`` is the Gaussian FWHM as a fraction of Q (pyreflect's 0.0294855 is
    2.95 %); ``dq_abs`` gives a per-point FWHM in Å⁻¹ instead. ``scale`` and
    ``background`` may be scalars or one value per film.
    """
    stacks = as_stacks(films)
    q = check_q(q)
    thickness = float(stacks[:, 1:-1, 2].sum(axis=1).max()) if stacks.shape[1] > 2 else 0.0
    plan = smearing_plan(q, resolution_fwhm(q, dq, dq_abs), points_per_sigma, thickness)
    if plan.smeared:
        films, extra = plan.edge_nodes(stacks)
        r_extra = parratt(extra, stacks[films]) if films.size else extra
        r = plan.smear(parratt(plan.q_fine, stacks), films, extra, r_extra)
    else:
        r = parratt(q, stacks)
    if not np.all(np.isfinite(r)):
        # Never expected for valid films; say so loudly rather than draw or train on NaN.
        raise FloatingPointError(f"reflectivity is not finite at {int(np.sum(~np.isfinite(r)))} points "
                                 "(a numerical fault: please report this film)")
    scale = np.asarray(scale, dtype=float).reshape(-1, 1)
    background = np.asarray(background, dtype=float).reshape(-1, 1)
    return r * scale + background
