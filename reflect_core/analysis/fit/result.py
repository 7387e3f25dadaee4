"""What a fit returns (contract, "fit.json"): the fitted films, per-contrast scale/background/χ²,
the free parameters with ±1σ, the search used, correlations, the MCMC summary, and the data
with the model curve. ``to_json`` gives fit.json; ``from_json(d, curves)`` rebuilds the result
(the model curves and profile are recomputed from the stored films, the same way)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reflect_core.analysis.fit.datasets import prepare
from reflect_core.analysis.fit.stats import chi2, chi2_reduced
from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import Film, film_from_dict
from reflect_core.physics.profile import sld_profile

SEARCH_LOCAL = "least squares"
SEARCH_GLOBAL = "differential evolution + least squares"


@dataclass(frozen=True)
class FittedCurve:
    q: np.ndarray  # Å⁻¹, sorted (stable: repeated Q of overlapping segments kept)
    r: np.ndarray
    dr: np.ndarray
    dq: np.ndarray | None  # FWHM in Å⁻¹ per point as used by the fit; None: not smeared
    r_fit: np.ndarray  # refnx's model (the one minimised) at q, with scale and background
    name: str


@dataclass
class FitResult:
    film: Film  # contrast 0
    films: list[Film]
    contrasts: list[dict]  # name, scale, background, ambient_sld, n_points, chi2_reduced
    parameters: list[dict]  # name, i, par, contrast, value, stderr, initial, bounds
    ties: list
    chi2: float
    chi2_reduced: float | None
    n_points: int
    n_free: int
    search: str
    curves: list[FittedCurve]
    profile: tuple[np.ndarray, np.ndarray]  # (z Å, SLD 10⁻⁶ Å⁻²) of contrast 0
    correlations: dict | None = None
    mcmc: dict | None = None
    found_by: str = "least squares"  # which search found the final χ²
    dq: float = 0.0294855  # dQ/Q (FWHM) for curves without a dQ column
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    mixes: list = field(default_factory=list)  # as configured ("b": "ambient" for a solvent); φ is a parameter

    @property
    def scale(self) -> float:
        return self.contrasts[0]["scale"]

    @property
    def background(self) -> float:
        return self.contrasts[0]["background"]

    def to_json(self) -> dict:
        return _safe({
            "film": self.film.to_dict(), "films": [f.to_dict() for f in self.films],
            "scale": self.scale, "background": self.background, "contrasts": self.contrasts,
            "parameters": self.parameters, "ties": self.ties, "mixes": self.mixes, "chi2": self.chi2,
            "chi2_reduced": self.chi2_reduced, "n_points": self.n_points, "n_free": self.n_free,
            "search": self.search, "found_by": self.found_by, "correlations": self.correlations,
            "mcmc": self.mcmc, "dq": self.dq, "notes": self.notes, "seconds": self.seconds,
        })

    @classmethod
    def from_json(cls, d: dict, curves) -> "FitResult":
        """The result of ``to_json`` with its curves re-attached (the same curves, in order)."""
        if not isinstance(d, dict) or not isinstance(d.get("films"), list) or not isinstance(d.get("contrasts"), list):
            raise InvalidInput("fit.json: expected an object with 'films' and 'contrasts' lists")
        curves = list(curves)
        if not len(curves) == len(d["films"]) == len(d["contrasts"]):
            raise InvalidInput(f"fit.json: {len(d['films'])} contrasts but {len(curves)} curves given")
        films = [film_from_dict(f) for f in d["films"]]
        fitted = []
        for film, contrast, curve in zip(films, d["contrasts"], curves):
            prepared = prepare(curve, contrast["name"], float(d.get("dq", 0.0294855)))
            r_fit = model_curve(film, prepared.q, prepared.dq, contrast["scale"], contrast["background"])
            fitted.append(FittedCurve(prepared.q, prepared.r, prepared.dr, prepared.dq, r_fit, contrast["name"]))
        return cls(
            film=films[0], films=films, contrasts=d["contrasts"], parameters=d.get("parameters", []),
            ties=d.get("ties", []), mixes=list(d.get("mixes") or []),
            chi2=d["chi2"], chi2_reduced=d.get("chi2_reduced"), n_points=d["n_points"],
            n_free=d["n_free"], search=d["search"], curves=fitted, profile=film_profile(films[0]),
            correlations=d.get("correlations"), mcmc=_mcmc_arrays(d.get("mcmc")),
            found_by=d.get("found_by", "least squares"),
            dq=float(d.get("dq", 0.0294855)), notes=list(d.get("notes", [])), seconds=dict(d.get("seconds", {})))


def model_curve(film: Film, q: np.ndarray, dq: np.ndarray | None, scale: float, background: float) -> np.ndarray:
    """refnx's R(Q) of a film, as the fit computes it (same slabs, same pointwise smearing)."""
    from refnx.reflect import reflectivity as refnx_reflectivity  # refnx takes a second to import

    from reflect_core.analysis.fit.model import QUAD_ORDER
    from reflect_core.physics.refnx_bridge import to_refnx_slabs

    w = to_refnx_slabs(film.beam_array())
    return np.asarray(refnx_reflectivity(q, w, scale=scale, bkg=background, dq=0.0 if dq is None else dq,
                                         quad_order=QUAD_ORDER), dtype=float)


def film_profile(film: Film) -> tuple[np.ndarray, np.ndarray]:
    z, sld = sld_profile(film.as_array()[None])
    return z, sld[0]


def total_chi2(curves: list[FittedCurve], n_free: int) -> tuple[float, float | None, int]:
    r, r_fit, dr = (np.concatenate([getattr(c, a) for c in curves]) for a in ("r", "r_fit", "dr"))
    total, n = chi2(r, r_fit, dr)
    return total, chi2_reduced(r, r_fit, dr, n_free), n


def _mcmc_arrays(mcmc: dict | None) -> dict | None:
    """The SLD band as arrays, as run_fit gives it."""
    if not isinstance(mcmc, dict) or not isinstance(mcmc.get("sld_band"), dict):
        return mcmc
    return dict(mcmc, sld_band={k: np.asarray(v, dtype=float) for k, v in mcmc["sld_band"].items()})


def _safe(value):
    """JSON-safe: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _safe(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
