"""Is a measured curve of the kind a network was trained on?

A network only interpolates between its training curves. To see whether a measured curve lies among
them, ENVELOPE_CURVES curves are drawn from the model's own dataset settings (its prior, Q grid,
resolution and noise, with a seed of their own) and, at every Q of the model's grid, the band from
the 0.5th to the 99.5th percentile of log₁₀ R is taken. The measured curve, brought onto that grid as
the network sees it, is outside the prior where it leaves the band (widened by MARGIN_DECADES). More
than OUTSIDE_LIMIT of its points outside means the network is extrapolating: its profile is then a
guess, whatever its χ². The test is necessary, not sufficient: a curve inside the band at every Q
can still be unlike any one training curve. A model that carries no dataset settings (imported
weights) cannot be checked, and says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reflect_core.analysis.verdicts import Verdict
from reflect_core.base.errors import ReflectError
from reflect_core.data.generate import dataset_from_dict, simulate_chunk
from reflect_core.ml.meta import META, ModelMeta

ENVELOPE_CURVES = 2000
ENVELOPE_SEED = 20_240_613  # not a training seed: the band is not made of the model's own curves
BAND_PERCENTILES = (0.5, 99.5)
OUTSIDE_LIMIT = 0.1
LOG_FLOOR = 1e-12  # R ≤ 0 (a noisy or over-subtracted point) is compared as this
# The band is widened by 0.02 decades (5 % in R): below the 5 % normalisation error of a measurement,
# and above the rounding at the total-reflection plateau, where every curve has R = 1 and the band none.
MARGIN_DECADES = 0.02


@dataclass(frozen=True)
class PriorCheck:
    outside_fraction: float | None  # of the model-grid points; None when it cannot be judged
    verdict: Verdict
    q_outside: tuple[float, float] | None = None  # the Q span (Å⁻¹) of the points outside


@functools.lru_cache(maxsize=8)
def _band(meta_path: str, modified: float) -> tuple[np.ndarray, np.ndarray] | None:
    """log₁₀ R band (low, high) on the model's grid, or None for a model without dataset settings.
    Cached per model file and its modification time: ~1 s of simulation, once per model."""
    meta = ModelMeta.read(Path(meta_path).parent)
    if not meta.dataset or "prior" not in meta.dataset:
        return None
    config = dataset_from_dict({**meta.dataset, "n": ENVELOPE_CURVES, "seed": ENVELOPE_SEED})
    if config.q.size != meta.q.size or not np.allclose(config.q, meta.q, rtol=1e-9):
        return None  # its settings do not make its grid: nothing honest to compare with
    stacks = config.prior.sample(config.n, config.seed, config.sampler)
    r, _ = simulate_chunk(config, stacks, np.random.default_rng(ENVELOPE_SEED))
    low, high = np.percentile(np.log10(np.clip(r, LOG_FLOOR, None)), BAND_PERCENTILES, axis=0)
    return low, high


def check_prior(model_dir, r_on_model_grid: np.ndarray) -> PriorCheck:
    """Where the measured curve, on the model's Q grid (as ``predict.curves_on_model_grid`` gives it),
    leaves the band of the model's training curves."""
    meta_path = Path(model_dir) / META
    try:
        band = _band(str(meta_path.resolve()), meta_path.stat().st_mtime)
    except (OSError, ReflectError) as exc:
        band, why = None, f"its settings cannot be read ({exc})"
    else:
        why = "it carries no dataset settings (imported weights) to draw its training curves from"
    if band is None:
        return PriorCheck(None, Verdict("unknown", f"Whether this curve lies inside the model's prior is unknown: "
                                                   f"{why}."))
    low, high = band
    log_r = np.log10(np.clip(np.asarray(r_on_model_grid, dtype=float), LOG_FLOOR, None))
    outside = (log_r < low - MARGIN_DECADES) | (log_r > high + MARGIN_DECADES)
    fraction = float(outside.mean())
    q = ModelMeta.read(model_dir).q
    span = (float(q[outside].min()), float(q[outside].max())) if outside.any() else None
    measure = (f"{fraction:.1%} of its {outside.size} points on the model's Q grid lie outside the band of "
               f"{ENVELOPE_CURVES:,} curves drawn from the model's prior (0.5–99.5 percentile of log R)")
    if span is not None:
        measure += f", between Q = {span[0]:.3g} and {span[1]:.3g} Å⁻¹"
    if fraction > OUTSIDE_LIMIT:
        return PriorCheck(fraction, Verdict("extrapolating", f"Outside the model's prior: {measure}. The network "
                                                             "is extrapolating, so its profile is a guess; train "
                                                             "a model whose prior covers this film."), span)
    if fraction > 0:
        return PriorCheck(fraction, Verdict("close", f"Mostly inside the model's prior: {measure}."), span)
    return PriorCheck(0.0, Verdict("consistent", f"Inside the model's prior: {measure}."), None)
