"""How much work one fit may ask for, checked before anything runs (the page, the CLI and the runner).

- Points: at most MAX_CURVE_POINTS per curve (the local profile's Q-point limit): the covariance's
  Jacobian and the figures hold every point.
- MCMC: refnx's emcee allocates the whole chain (steps × walkers × free parameters doubles) before
  its first step, and copies it once more while growing it; at most MAX_CHAIN_VALUES values (80 MB,
  ~160 MB at the copy), so 100 free parameters and the local profile's 20,000 steps (6.4 GB) cannot
  be asked for.
"""

from __future__ import annotations

from reflect_core.base.errors import InvalidInput

MAX_CURVE_POINTS = 20_000
MAX_CHAIN_VALUES = 10_000_000
MIN_WALKERS, WALKERS_PER_PARAMETER = 16, 4


def walkers_for(n_free: int) -> int:
    """emcee's walkers: 4 per free parameter, at least 16, an even number (it needs ≥ 2 per parameter)."""
    walkers = max(MIN_WALKERS, WALKERS_PER_PARAMETER * n_free)
    return walkers + walkers % 2


def max_mcmc_steps(n_free: int) -> int:
    return MAX_CHAIN_VALUES // (walkers_for(n_free) * max(n_free, 1))


def check_fit_size(n_free: int, mcmc_steps: int, curves=()) -> None:
    """InvalidInput naming what is too large: a curve's points, or the MCMC chain."""
    for k, curve in enumerate(curves):
        if curve.q.size > MAX_CURVE_POINTS:
            raise InvalidInput(f"curve {k + 1} has {curve.q.size:,} points; a fit takes at most "
                               f"{MAX_CURVE_POINTS:,} per curve (rebin it)")
    if mcmc_steps > max_mcmc_steps(n_free):
        raise InvalidInput(f"mcmc_steps: {mcmc_steps:,} steps × {walkers_for(n_free)} walkers × {n_free} free "
                           f"parameters is more than a chain may hold here ({MAX_CHAIN_VALUES:,} values); at most "
                           f"{max_mcmc_steps(n_free):,} steps with {n_free} free parameters")
