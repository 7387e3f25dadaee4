"""``run_fit``: a FitConfig and its curves → a FitResult (least squares, global search, MCMC).

Searches:
- "local": least squares from the configuration's values.
- "global": differential evolution within the bounds (seeded), then a least-squares polish
  from its best member, and least squares from the start as well; the best of the three is
  kept and ``found_by`` says which.
- "auto": least squares from the start first (about a second); when that ends with χ²_red above
  AUTO_GLOBAL_ABOVE (3: for ν ≥ 20 points a right model is above 3 with probability < 1e-5), the
  start was generic (fringes out of phase, least squares stopped in the nearest local minimum)
  and the global search runs too. Measured on held-out default-prior curves (bench/bench_fit.py):
  from a network's start least squares alone reached χ²_red ≈ 1 every time, so deciding on the
  start's χ² (which is often > 50 even there) spent 7–14 s on global searches that found nothing better.

The model curve (``r_fit``) is refnx's (the one minimised), at the data's own Q and resolution.
"""

from __future__ import annotations

import time

import numpy as np

from reflect_core.analysis.fit.budget import check_fit_size
from reflect_core.analysis.fit.config import FitConfig
from reflect_core.analysis.fit.datasets import notes_for, prepare
from reflect_core.analysis.fit.model import FitModel
from reflect_core.analysis.fit.result import (
    SEARCH_GLOBAL,
    SEARCH_LOCAL,
    FitResult,
    FittedCurve,
    film_profile,
    total_chi2,
)
from reflect_core.analysis.fit.search import Guard, covariance, differential_evolution, least_squares
from reflect_core.analysis.fit.stats import chi2_reduced
from reflect_core.base.errors import InvalidInput

SEARCHES = ("auto", "local", "global")
AUTO_GLOBAL_ABOVE = 3.0
MAX_MCMC_STEPS = 100_000
LARGE_CHI2_RED = 3.0  # for ν ≥ 20 points, P(χ²_red > 3) < 1e-5 when the model is right


def _check_arguments(config, curves, search, mcmc_steps, seed) -> None:
    if not isinstance(config, FitConfig):
        raise InvalidInput(f"run_fit needs a FitConfig (FitConfig.parse), got {type(config).__name__}")
    if search not in SEARCHES:
        raise InvalidInput(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if isinstance(mcmc_steps, bool) or not isinstance(mcmc_steps, int) or not 0 <= mcmc_steps <= MAX_MCMC_STEPS:
        raise InvalidInput(f"mcmc_steps must be a whole number 0..{MAX_MCMC_STEPS:,}, got {mcmc_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"seed must be a whole number ≥ 0, got {seed!r}")
    if len(curves) != len(config.contrasts):
        raise InvalidInput(f"the configuration was parsed for {len(config.contrasts)} datasets but "
                           f"{len(curves)} curves were given")


def run_fit(config: FitConfig, curves, *, search: str = "auto", mcmc_steps: int = 0, seed: int = 0,
            reporter=None, control=None) -> FitResult:
    curves = list(curves)
    _check_arguments(config, curves, search, mcmc_steps, seed)
    check_fit_size(config.n_free, mcmc_steps, curves)
    t0 = time.monotonic()
    data = [prepare(curve, contrast.name, config.dq) for curve, contrast in zip(curves, config.contrasts)]
    notes = notes_for(data)
    model = FitModel(config, data)
    n_points, n_free = sum(d.n_used for d in data), len(model.free)
    if n_points <= n_free:
        raise InvalidInput(f"{n_points} points with dR > 0 for {n_free} free parameters; a fit needs more points "
                           "than parameters")
    guard = Guard(reporter, control)
    model.set_guard(guard)
    seconds = {}
    try:
        x_start = model.x
        start_red = model.chi2() / (n_points - n_free)
        guard.log(f"start: χ²_red = {start_red:.4g}; search: {search}")
        found_by, from_start = "least squares", None
        if search == "auto":
            t = time.monotonic()
            from_start = least_squares(model, guard, x_start)
            seconds["least_squares"] = time.monotonic() - t
            local_red = from_start.chi2 / (n_points - n_free)
            guard.log(f"least squares from the start: χ²_red = {local_red:.4g}; "
                      + ("global search next" if local_red > AUTO_GLOBAL_ABOVE else "no global search needed")
                      + f" (auto: global above {AUTO_GLOBAL_ABOVE:g})")
        use_global = search == "global" or (from_start is not None and
                                            from_start.chi2 / (n_points - n_free) > AUTO_GLOBAL_ABOVE)
        if use_global:
            # The evolution's seed member is the start, not the local minimum just found: seeded with that
            # strong member the population collapsed onto it (measured: χ²_red 10.6 kept instead of 0.9).
            model.set_x(x_start)
            t = time.monotonic()
            de = differential_evolution(model, guard, seed)
            seconds["differential_evolution"] = time.monotonic() - t
            guard.log(f"differential evolution: χ²_red = {de.chi2 / (n_points - n_free):.4g} after {de.evaluations} "
                      f"evaluations ({de.message})")
            t = time.monotonic()
            ls = least_squares(model, guard, de.x)
            # Least squares from the start too (about a second): a capped evolution can end in a worse valley
            # than the start's own (measured on network starts: χ²_red 5.4 from the start, 42 after DE + polish).
            from_start = from_start or least_squares(model, guard, x_start)
            seconds["least_squares"] = seconds.get("least_squares", 0.0) + time.monotonic() - t
            found_by, best = min((("differential evolution", de), ("least squares", ls),
                                  ("least squares from the start", from_start)), key=lambda pair: pair[1].chi2)
            if found_by == "differential evolution":  # a polish never should get worse; if it did, say so
                notes.append("the least-squares polish did not improve on differential evolution's best; kept that")
            elif found_by == "least squares from the start":
                notes.append("least squares from the start beat the global search; kept that")
            search_label = SEARCH_GLOBAL
        elif from_start is not None:
            best, search_label = from_start, SEARCH_LOCAL
        else:
            t = time.monotonic()
            best = least_squares(model, guard, x_start)
            seconds["least_squares"] = time.monotonic() - t
            search_label = SEARCH_LOCAL
        guard.log(f"least squares: χ²_red = {best.chi2 / (n_points - n_free):.4g} ({best.message})")
        model.set_x(best.x)
        t = time.monotonic()
        cov = covariance(model, best.x, guard)
        seconds["covariance"] = time.monotonic() - t
        if cov.not_estimable:
            notes.append("not determined by the data (no error bar): " + ", ".join(cov.not_estimable))
        at_bound = [f.name for f, v in zip(model.free, best.x) if np.isclose(v, f.lo, rtol=0, atol=1e-6 * (f.hi - f.lo))
                    or np.isclose(v, f.hi, rtol=0, atol=1e-6 * (f.hi - f.lo))]
        if at_bound:
            notes.append("at a bound (widen it if the value is physical): " + ", ".join(at_bound))
        mcmc = None
        if mcmc_steps > 0:
            from reflect_core.analysis.fit.mcmc import run_mcmc

            t = time.monotonic()
            mcmc = run_mcmc(model, cov, mcmc_steps, seed, guard)
            seconds["mcmc"] = time.monotonic() - t
            model.set_x(best.x)
    finally:
        model.set_guard(None)
    fitted = [FittedCurve(d.q, d.r, d.dr, d.dq, model.r_model(k), d.name) for k, d in enumerate(data)]
    total, red, n_used = total_chi2(fitted, n_free)
    contrasts = [{"name": c.name, "scale": model.scale(k), "background": model.background(k),
                  "ambient_sld": float(model.ambients[k].value), "n_points": data[k].n_used,
                  "chi2_reduced": chi2_reduced(f.r, f.r_fit, f.dr, n_free * data[k].n_used / n_used)}
                 for k, (c, f) in enumerate(zip(config.contrasts, fitted))]
    if red is not None and red > LARGE_CHI2_RED:
        notes.append(f"χ²_red = {red:.3g}: the model does not explain the data within dR, and the ±1σ (from dR "
                     "alone) understate the uncertainty; consider the model (layers, resolution, scale/background)")
    if len(contrasts) > 1:
        notes.append("a contrast's χ²_red counts its share of the free parameters, p·N_k/N, so the contrasts' "
                     "χ² add up to the total")
    parameters = [{"name": f.name, "i": f.i, "par": f.par, "contrast": f.contrast, "value": float(v),
                   "stderr": se, "initial": f.initial, "bounds": [f.lo, f.hi]}
                  for f, v, se in zip(model.free, best.x, cov.stderr)]
    correlations = None
    if cov.correlations is not None:
        correlations = {"names": [f.name for f in model.free], "matrix": cov.correlations.tolist()}
    films = [model.film(k) for k in range(len(data))]
    seconds["total"] = time.monotonic() - t0
    return FitResult(film=films[0], films=films, contrasts=contrasts, parameters=parameters,
                     ties=list(config.raw_ties),
                     mixes=config.to_dict()["mixes"], chi2=total, chi2_reduced=red, n_points=n_used, n_free=n_free,
                     search=search_label, curves=fitted, profile=film_profile(films[0]), correlations=correlations,
                     mcmc=mcmc, found_by=found_by, dq=config.dq, notes=notes, seconds=seconds)
