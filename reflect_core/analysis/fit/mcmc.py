"""Posterior sampling after a least-squares fit: refnx's CurveFitter.sample (its bundled emcee
EnsembleSampler on refnx's log-posterior: the Gaussian likelihood of the data with their dR,
times uniform priors within the bounds), then a summary per free parameter and an SLD band.

Choices (stated in the result):
- walkers: 4 per free parameter, at least 16, even (emcee needs ≥ 2 per parameter); they start
  in a small Gaussian ball around the least-squares minimum (its covariance ÷ 100, or 10⁻³ of
  each bound width where the covariance is unknown), so little burn-in is needed.
- burn-in: the first quarter of the steps.
- thinning: half the largest integrated autocorrelation time (emcee's estimate on the kept
  steps), but never so much that fewer than MIN_BAND_FILMS samples remain.
- ``steps`` are ensemble steps: the log-posterior is evaluated steps × walkers times.
"""

from __future__ import annotations

import logging

import numpy as np
from refnx._lib.emcee.autocorr import integrated_time
from refnx.analysis import CurveFitter

from reflect_core.analysis.fit.budget import walkers_for
from reflect_core.analysis.fit.model import FitModel
from reflect_core.analysis.fit.search import Covariance, Guard
from reflect_core.physics.profile import auto_z, sld_profile

BURN_FRACTION = 0.25
MIN_BAND_FILMS, MAX_BAND_FILMS = 200, 500
BALL_SHRINK = 0.1  # start ball σ = this × the least-squares σ
JITTER = 1e-3  # start ball σ as a fraction of the bound width, where σ is unknown
PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)


def _start_ball(model: FitModel, cov: Covariance, walkers: int, rng: np.random.RandomState) -> np.ndarray:
    x, lo, hi = model.x, model.lower, model.upper
    sigma = np.array([s if s is not None and np.isfinite(s) and s > 0 else JITTER * (h - l)
                      for s, l, h in zip(cov.stderr, lo, hi)])
    ball = x + BALL_SHRINK * sigma * rng.standard_normal((walkers, x.size))
    ball[0] = x
    # Inside the bounds (the prior is zero outside): reflect back from an edge by a small margin.
    margin = 1e-9 * (hi - lo)
    return np.clip(ball, lo + margin, hi - margin)


def _thinning(chain: np.ndarray, walkers: int) -> tuple[int, float | None]:
    """(thin, largest autocorrelation time in steps, None when it cannot be estimated)."""
    emcee_log = logging.getLogger("refnx._lib.emcee.autocorr")
    level = emcee_log.level
    emcee_log.setLevel(logging.ERROR)  # "chain too short" is said in the result instead
    try:
        tau = float(np.max(integrated_time(chain, quiet=True)))
    except Exception:  # noqa: BLE001 - an estimate that fails leaves the chain unthinned
        tau = None
    finally:
        emcee_log.setLevel(level)
    wanted = 1 if tau is None or not np.isfinite(tau) else max(1, int(tau // 2))
    most = max(1, chain.shape[0] * walkers // MIN_BAND_FILMS)
    return min(wanted, most), tau


def sld_band(model: FitModel, samples: np.ndarray, rng: np.random.RandomState) -> tuple[dict, int]:
    """Median and 68 %/95 % bands of contrast 0's SLD profile over posterior films, on one z grid."""
    n = min(samples.shape[0], MAX_BAND_FILMS)
    replace = samples.shape[0] < MIN_BAND_FILMS
    pick = rng.choice(samples.shape[0], size=max(n, MIN_BAND_FILMS) if replace else n, replace=replace)
    stacks = []
    for x in samples[pick]:
        model.set_x(x)
        stacks.append(model.stack(0))
    stacks = np.array(stacks)
    z = auto_z(stacks)
    _, profiles = sld_profile(stacks, z)
    p = np.percentile(profiles, PERCENTILES, axis=0)
    band = {"z": z, "median": p[2], "lo68": p[1], "hi68": p[3], "lo95": p[0], "hi95": p[4]}
    return band, len(pick)


def run_mcmc(model: FitModel, cov: Covariance, steps: int, seed: int, guard: Guard) -> dict:
    n = len(model.free)
    walkers = walkers_for(n)
    rng = np.random.RandomState(seed)
    fitter = CurveFitter(model.objective, nwalkers=walkers)
    fitter.initialise(_start_ball(model, cov, walkers, rng), random_state=rng)
    guard.start("MCMC", steps)
    guard.total = 0  # progress per ensemble step (below), not per evaluation
    done = [0]
    every = max(1, steps // 100)

    def step(_coords, _log_prob):
        done[0] += 1
        if done[0] % every == 0 or done[0] == steps:
            guard.check()
            guard.report(done[0], steps)

    fitter.sample(steps, random_state=rng, callback=step, verbose=False, pool=1)
    chain = np.asarray(fitter.chain)  # (steps, walkers, n)
    burn = int(steps * BURN_FRACTION)
    thin, tau = _thinning(chain[burn:], walkers)
    kept = chain[burn::thin].reshape(-1, n)
    acceptance = float(np.mean(fitter.sampler.acceptance_fraction))
    q = np.percentile(kept, PERCENTILES, axis=0)
    parameters = [{"name": f.name, "median": float(q[2, k]), "p2_5": float(q[0, k]), "p16": float(q[1, k]),
                   "p84": float(q[3, k]), "p97_5": float(q[4, k])} for k, f in enumerate(model.free)]
    band, n_films = sld_band(model, kept, rng)
    notes = [f"{walkers} walkers × {steps} steps from a ball around the least-squares minimum (seed {seed}); "
             f"first {burn} steps discarded, every {thin}th kept: {kept.shape[0]} samples; "
             f"mean acceptance {acceptance:.2f}"]
    if tau is None or steps - burn < 50 * tau:
        notes.append("the chain is shorter than 50 autocorrelation times"
                     + (f" ({tau:.1f} steps)" if tau is not None else "") + ": the intervals are rough; run more steps")
    guard.log(notes[0])
    return {"steps": steps, "walkers": walkers, "burn": burn, "thin": thin, "samples": int(kept.shape[0]),
            "seed": seed, "acceptance": acceptance, "autocorrelation_steps": tau, "band_films": n_films,
            "parameters": parameters, "sld_band": band, "notes": notes}
