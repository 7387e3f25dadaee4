"""Physics fits of measured curves with refnx (least squares, differential evolution, MCMC).

Modules: ``config`` (FitConfig.parse), ``datasets`` (curves made ready), ``model`` (refnx
objects), ``search`` (least squares, differential evolution, covariance), ``mcmc`` (posterior
and SLD band), ``engine`` (run_fit), ``result`` (FitResult, fit.json), ``stats`` (the one χ²).
refnx is imported only when a fit runs (``run_fit``), not on import of this package.
"""

from reflect_core.analysis.fit.config import ConfigError, FitConfig
from reflect_core.analysis.fit.result import FitResult, FittedCurve
from reflect_core.analysis.fit.stats import chi2, chi2_reduced

__all__ = ["ConfigError", "FitConfig", "FitResult", "FittedCurve", "chi2", "chi2_reduced", "run_fit"]


def __getattr__(name):
    if name == "run_fit":
        from reflect_core.analysis.fit.engine import run_fit

        return run_fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
