"""The searches (refnx's CurveFitter) and the least-squares covariance.

- ``least_squares``: CurveFitter.fit("least_squares") = scipy's trust-region-reflective
  least squares within the bounds, from the current values.
- ``differential_evolution``: CurveFitter.fit("differential_evolution") on refnx's negative
  log-likelihood (χ²/2 + a constant), seeded, the start as one member of the population, with a
  budget of model evaluations (so a 6-layer fit stays well under a minute on 2 cores) and a
  wall-clock cap as a safety net.
- ``covariance``: (JᵀJ)⁻¹ from a central-difference Jacobian of the weighted residuals at the
  minimum. Not scaled by χ²_red: dR are the measured 1σ uncertainties, so the errors are those
  of the data (when χ²_red ≫ 1 they understate the uncertainty, and the result says χ²_red).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
from refnx.analysis import CurveFitter
from scipy.linalg import LinAlgWarning

from reflect_core.analysis.fit.model import FitModel
from reflect_core.base.job_protocol import Stopped

DE_PER_PARAMETER, DE_MIN_POPULATION, DE_MAX_POPULATION = 10, 40, 120  # members: 10 per free parameter,
# within [40, 120]: scipy's default (15 per parameter) spends a 6-layer fit's budget in a dozen generations
DE_EVALUATIONS = 6_000  # model calls: ≈ 3 ms each for 6 layers × 400 points with dQ on 2 free cores → ≈ 20 s
DE_MAX_GENERATIONS = 300
DE_MAX_SECONDS = 30.0  # safety net on a loaded machine; the budget above normally ends first
DE_TOL = 0.01  # scipy's default relative spread of the population's energies at convergence
PROGRESS_EVERY_S = 0.25
RANK_RCOND = 1e-8  # singular values of J below this × the largest: not estimable (JᵀJ cond > 1e16)
NULL_WEIGHT = 1e-6  # a parameter with this much weight in J's null space has no error bar
JACOBIAN_STEP = 1e-5  # central-difference step as a fraction of the parameter's bound width


class Guard:
    """Called before every model evaluation: counts calls, reports progress and honours a
    stop request at most every PROGRESS_EVERY_S (a request may read a file)."""

    def __init__(self, reporter=None, control=None):
        self.reporter, self.control = reporter, control
        self.calls, self.phase, self.total = 0, "fit", 0
        self._last = 0.0

    def start(self, phase: str, total: int = 0) -> None:
        self.phase, self.total, self.calls = phase, total, 0
        if self.reporter is not None:
            self.reporter.phase(phase, 0, total)
        self.check()

    def check(self) -> None:
        if self.control is not None and self.control.requested() == "stop":
            raise Stopped(f"fit stopped on request during {self.phase}")

    def report(self, done: int, total: int) -> None:
        if self.reporter is not None:
            self.reporter.phase(self.phase, done, total)

    def __call__(self) -> None:
        self.calls += 1
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.check()
            if self.total:
                self.report(min(self.calls, self.total), self.total)

    def log(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter.log(message)


@dataclass(frozen=True)
class Found:
    x: np.ndarray
    chi2: float
    evaluations: int
    message: str


def least_squares(model: FitModel, guard: Guard, x0=None) -> Found:
    if x0 is not None:
        model.set_x(x0)
    n = len(model.free)
    guard.start("least squares", 100 * n)  # scipy's default max_nfev for trf
    fitter = CurveFitter(model.objective, nwalkers=2 * n + 2)
    # x_scale="jac": thickness (100s of Å), SLD (~1) and background (~1e-7) differ by 10⁹.
    with warnings.catch_warnings():  # refnx warns of parameters without effect; covariance() says so itself
        warnings.simplefilter("ignore", LinAlgWarning)
        res = fitter.fit("least_squares", x_scale="jac", verbose=False)
    model.set_x(res.x)
    return Found(np.array(res.x, dtype=float), model.chi2(), int(res.nfev), str(res.message))


def differential_evolution(model: FitModel, guard: Guard, seed: int) -> Found:
    n = len(model.free)
    size = int(np.clip(DE_PER_PARAMETER * n, DE_MIN_POPULATION, DE_MAX_POPULATION))
    generations = int(max(10, min(DE_MAX_GENERATIONS, DE_EVALUATIONS // size - 1)))
    guard.start("differential evolution", generations)
    start, x0 = time.monotonic(), model.x
    init = latin_hypercube(np.random.default_rng(seed), size, model.lower, model.upper)
    init[0] = x0  # the start competes too: the search never ends worse than it began
    state = {"generation": 0, "timed_out": False}

    def callback(*_args, **_kwargs):  # refnx hands scipy's (x, convergence) through; called per generation
        state["generation"] += 1
        guard.check()
        guard.report(state["generation"], generations)
        if time.monotonic() - start > DE_MAX_SECONDS:
            state["timed_out"] = True
            return True  # scipy ends the search and returns the best member so far
        return False

    fitter = CurveFitter(model.objective, nwalkers=2 * n + 2)
    saved, guard.total = guard.total, 0  # per-evaluation progress is per generation here
    res = fitter.fit("differential_evolution", target="nll", seed=seed, maxiter=generations, tol=DE_TOL,
                     init=init, polish=False, callback=callback, verbose=False)
    guard.total = saved
    model.set_x(res.x)
    message = str(res.message)
    if state["timed_out"]:
        message = f"stopped after {state['generation']} generations at the {DE_MAX_SECONDS:g} s cap"
    return Found(np.array(res.x, dtype=float), model.chi2(), int(res.nfev), message)


def latin_hypercube(rng, size: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(size, n) points within the bounds, one per stratum of each parameter."""
    strata = np.argsort(rng.random((lo.size, size)), axis=1).T
    return lo + (hi - lo) * (strata + rng.random((size, lo.size))) / size


@dataclass(frozen=True)
class Covariance:
    matrix: np.ndarray | None  # over the estimable parameters; None when none is estimable
    stderr: list  # float or None per free parameter
    correlations: np.ndarray | None  # None when any parameter is not estimable
    not_estimable: list  # names


def covariance(model: FitModel, x: np.ndarray, guard: Guard) -> Covariance:
    """(JᵀJ)⁻¹ in the fit's coordinates; a parameter the data does not determine (its
    column of J lies in J's numerical null space) gets stderr None."""
    lo, hi = model.lower, model.upper
    width = hi - lo
    guard.start("uncertainties", 2 * x.size)
    jac = np.empty((model.residuals(x).size, x.size))
    for k in range(x.size):
        h = JACOBIAN_STEP * width[k]
        up, down = x.copy(), x.copy()
        up[k], down[k] = min(x[k] + h, hi[k]), max(x[k] - h, lo[k])
        # Columns in units of the bound width, so that the SVD threshold compares like with like.
        jac[:, k] = (model.residuals(up) - model.residuals(down)) / ((up[k] - down[k]) / width[k])
    model.set_x(x)
    if not np.all(np.isfinite(jac)):
        return Covariance(None, [None] * x.size, None, [f.name for f in model.free])
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > RANK_RCOND * s[0] if s.size and s[0] > 0 else np.zeros(s.size, bool)
    null_weight = np.sum(vt[~keep] ** 2, axis=0)
    estimable = null_weight < NULL_WEIGHT
    cov_u = (vt[keep].T / s[keep] ** 2) @ vt[keep]
    cov = cov_u * np.outer(width, width)
    stderr = [math.sqrt(cov[k, k]) if estimable[k] else None for k in range(x.size)]
    correlations = None
    if estimable.all():
        se = np.sqrt(np.diag(cov))
        correlations = np.clip(cov / np.outer(se, se), -1.0, 1.0)
    return Covariance(cov if estimable.any() else None, stderr, correlations,
                      [f.name for f, ok in zip(model.free, estimable) if not ok])
