"""Where a refinement fit starts: a fit configuration (the /tmp contract's JSON form, read by
``analysis.fit.FitConfig.parse``) built around a network's profile, any SLD profile, or any film.

What varies: every inner layer's SLD, thickness and roughness, the substrate's roughness, the
scale and the background; the substrate's and the ambient's SLD stay fixed (they are known
materials, and the network's or the user's values are the start). An absorbing inner layer's
iSLD varies too when the film gives one (profiles carry none). Every bound holds its start value
and stays within the physical maxima of ``physics.film``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from reflect_core.analysis.fit import FitConfig
from reflect_core.analysis.measured import Analysis, analyse_with_model
from reflect_core.analysis.prior_start import prior_film_for_profile
from reflect_core.analysis.slabify import DEFAULT_MAX_LAYERS, SlabFit, slabify
from reflect_core.base.errors import InvalidInput
from reflect_core.formats.curves import Curve
from reflect_core.ml.meta import ModelMeta
from reflect_core.physics.film import MAX_ROUGHNESS, MAX_SLD, MAX_THICKNESS, Film

SCALE = {"value": 1.0, "bounds": [0.7, 1.3]}  # a normalisation off by more than 30 % is a reduction error
BACKGROUND = {"value": 1e-7, "bounds": [0.0, 1e-5]}  # without data: typical NR floors are 1e-7 – 1e-6
MAX_BACKGROUND = 1.0  # R units, as the fit configuration's
HIGH_Q_FRACTION = 0.1  # the background floor: the median R of the highest-Q tenth of the points …
HIGH_Q_MIN_POINTS = 5  # … and at least this many
BACKGROUND_FACTOR = 10.0  # bounds [0, 10 × floor]: the floor is an upper estimate, its order of magnitude is all
# A band is read as about one standard deviation (a 68 % band); bounds of twice its half-width
# hold the truth about 95 % of the time when the band is honest.
BAND_FACTOR = 2.0
BAND_MIN = {"sld": 0.1, "thickness": 2.0, "roughness": 2.0}  # the narrowest half-width a band gives


@dataclass(frozen=True)
class Spread:
    """The bounds around a value when nothing better (a band) says how well it is known."""

    sld_rel: float = 0.3  # SLD ± max(sld_min, 30 % of |SLD|)
    sld_min: float = 1.0  # 10⁻⁶ Å⁻²: a whole material apart (PS 1.4, SiO2 3.5, dPS 6.4)
    thickness_rel: float = 0.5  # thickness ± max(thickness_min, 50 %)
    thickness_min: float = 10.0  # Å
    roughness_add: float = 10.0  # roughness in [0, max(2σ, σ + 10 Å)], at most half the thinner neighbour
    isld_rel: float = 1.0  # iSLD in [0, (1 + 100 %) iSLD]

    def __post_init__(self):
        for name in ("sld_rel", "sld_min", "thickness_rel", "thickness_min", "roughness_add", "isld_rel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
                raise InvalidInput(f"spread.{name}: must be a positive number, got {value!r}")


DEFAULT_SPREAD = Spread()


def _bound(i: int, par: str, lo: float, hi: float, value: float) -> dict:
    """The bounds entry, clipped to the physical range, always holding ``value``, lo < hi."""
    low, high = (-MAX_SLD, MAX_SLD) if par == "sld" else (0.0, MAX_SLD if par == "isld" else
                                                          MAX_THICKNESS if par == "thickness" else MAX_ROUGHNESS)
    lo, hi = max(min(lo, value), low), min(max(hi, value), high)
    if not lo < hi:  # a value at a physical limit with a zero spread: open the bound inward
        lo, hi = (lo, lo + 1.0) if lo + 1.0 <= high else (hi - 1.0, hi)
    return {"i": i, "par": par, "bounds": [float(lo), float(hi)]}


def _incident(film: Film) -> int:
    return len(film.layers) - 1 if film.beam_from == "ambient" else 0


def _roughness_top(film: Film, j: int, spread: Spread, thickness_hi: dict) -> float:
    """The upper roughness bound of interface j: max(2σ, σ + roughness_add), at most half the
    thinner inner neighbour's upper thickness bound (a wider interface merges that layer's two)."""
    sigma = film.layers[j].roughness
    top = max(2 * sigma, sigma + spread.roughness_add)
    neighbours = [thickness_hi[i] for i in (j, j + 1) if i in thickness_hi]
    return min(top, max(0.5 * min(neighbours), sigma + 1.0)) if neighbours else top


def film_bounds(film: Film, spread: Spread = DEFAULT_SPREAD, band_spread: dict | None = None) -> list[dict]:
    """The bounds entries of every parameter that varies (module docstring), from ``spread``, or,
    for a parameter that ``band_spread`` gives a half-width, BAND_FACTOR × that half-width."""
    layers, last = film.layers, len(film.layers) - 1
    band = band_spread or {}

    def half(i: int, par: str, default: float) -> float:
        return max(BAND_FACTOR * band[(i, par)], BAND_MIN[par]) if (i, par) in band else default

    thickness = {}
    for i in range(1, last):
        d = layers[i].thickness
        width = half(i, "thickness", max(spread.thickness_rel * d, spread.thickness_min))
        thickness[i] = [max(d - width, 0.0), d + width]
    room = MAX_THICKNESS * (1 - 1e-9) - sum(hi for _, hi in thickness.values())  # 1e-9: round-off
    if room < 0:  # the fit configuration bounds the thickest film the bounds allow: share the room out
        margin = sum(hi - layers[i].thickness for i, (_, hi) in thickness.items())
        keep = max(0.0, 1 + room / margin) if margin > 0 else 0.0
        for i, pair in thickness.items():
            pair[1] = layers[i].thickness + keep * (pair[1] - layers[i].thickness)
    out = []
    for i in range(0, last):
        layer = layers[i]
        if i > 0:
            width = half(i, "sld", max(spread.sld_rel * abs(layer.sld), spread.sld_min))
            out.append(_bound(i, "sld", layer.sld - width, layer.sld + width, layer.sld))
            if layer.isld > 0 and i != _incident(film):
                out.append(_bound(i, "isld", 0.0, layer.isld * (1 + spread.isld_rel), layer.isld))
            lo, hi = thickness[i]
            if hi > lo:
                out.append(_bound(i, "thickness", lo, hi, layer.thickness))
        sigma = layer.roughness
        if (i, "roughness") in band:
            width = half(i, "roughness", 0.0)
            out.append(_bound(i, "roughness", sigma - width, sigma + width, sigma))
        else:
            top = _roughness_top(film, i, spread, {k: hi for k, (_, hi) in thickness.items()})
            out.append(_bound(i, "roughness", 0.0, top, sigma))
    return out


# ---- what a band says about each parameter -------------------------------------------------------

def _crossing_reach(z, lo, hi, centre: float, level: float) -> float:
    """How far from ``centre`` a profile inside the band can cross ``level``: the reach of the run
    of grid intervals around ``centre`` on which the band (linear between points) holds ``level``
    (0 when the band excludes it at ``centre``). Resolved to the grid: up to one step more."""
    inside = (np.minimum(lo[:-1], lo[1:]) <= level) & (level <= np.maximum(hi[:-1], hi[1:]))
    at = int(np.clip(np.searchsorted(z, centre) - 1, 0, z.size - 2))
    if not inside[at]:
        return 0.0
    outside = np.flatnonzero(~inside)
    first = outside[outside < at].max(initial=-1) + 1
    last = outside[outside > at].min(initial=inside.size) - 1
    return float(max(centre - z[first], z[last + 1] - centre))


def band_spreads(fit: SlabFit) -> dict:
    """{(layer index, par): half-width} of each inner layer's sld and thickness and of each
    interface's roughness that the band (lo, hi) allows: an interface may sit wherever a profile
    in the band can cross the midpoint SLD of its two layers (reach δz_j); a thickness moves by the
    reach of both its interfaces, a roughness by the reach of its interface; a layer's SLD by the
    band's mean half-width over the layer's plateau (points farther than 2σ from both interfaces),
    absent when the layer is too thin or rough to have one (its SLD is then not seen directly)."""
    if fit.band is None:
        return {}
    (z, lo, hi), layers, z_int = fit.band, fit.film.layers, fit.interfaces
    reach = [_crossing_reach(z, lo, hi, z_int[j], 0.5 * (layers[j].sld + layers[j + 1].sld))
             for j in range(len(layers) - 1)]
    spread = {(j, "roughness"): r for j, r in enumerate(reach)}
    for i in range(1, len(layers) - 1):
        spread[(i, "thickness")] = reach[i - 1] + reach[i]
        plateau = (z > z_int[i - 1] + 2 * layers[i - 1].roughness) & (z < z_int[i] - 2 * layers[i].roughness)
        if plateau.any():
            spread[(i, "sld")] = float(np.mean(0.5 * (hi - lo)[plateau]))
    return spread


# ---- the configuration ----------------------------------------------------------------------------

def background_from(curve: Curve | None) -> dict:
    """Background start and bounds: the high-Q floor of the data (the median R of the highest-Q
    tenth of the points, at least HIGH_Q_MIN_POINTS) and [0, 10 × floor]; the small default
    without data or when that floor is not positive (noise around zero)."""
    if curve is None or curve.r is None:
        return dict(BACKGROUND)
    curve = curve.sorted()
    r = np.asarray(curve.r, float)
    tail = r[-max(HIGH_Q_MIN_POINTS, int(np.ceil(HIGH_Q_FRACTION * r.size))):]
    floor = float(np.median(tail)) if tail.size and np.all(np.isfinite(tail)) else 0.0
    if not 0 < floor < MAX_BACKGROUND / BACKGROUND_FACTOR:
        return dict(BACKGROUND)
    return {"value": floor, "bounds": [0.0, BACKGROUND_FACTOR * floor]}


def _check_dq(dq) -> float | None:
    if dq is None:
        return None
    if isinstance(dq, bool) or not isinstance(dq, (int, float)) or not 0 <= dq < 0.5:
        raise InvalidInput(f"dq: the resolution is a FWHM fraction of Q in [0, 0.5), got {dq!r}")
    return float(dq)


def config_for(film: Film, bounds: list[dict], curve: Curve | None = None, dq: float | None = None) -> dict:
    """The fit configuration (contract JSON form) of a film and its bounds."""
    config = {"film": film.to_dict(), "bounds": bounds, "scale": {"value": SCALE["value"],
                                                                  "bounds": list(SCALE["bounds"])},
              "background": background_from(curve)}
    if (dq := _check_dq(dq)) is not None:
        config["dq"] = dq
    return config


def start_from_film(film: Film, spread: Spread = DEFAULT_SPREAD, *, curve: Curve | None = None,
                    dq: float | None = None) -> dict:
    """A fit configuration around any film (the explorer's, one from history, an upload)."""
    if not isinstance(film, Film):
        raise InvalidInput(f"film: expected a Film, got {type(film).__name__}")
    if not isinstance(spread, Spread):
        raise InvalidInput(f"spread: expected a Spread, got {type(spread).__name__}")
    return config_for(film, film_bounds(film, spread), curve, dq)


def config_from_fit(fit: SlabFit, spread: Spread = DEFAULT_SPREAD, *, curve: Curve | None = None,
                    dq: float | None = None) -> dict:
    """A fit configuration around a slabified profile: the band's half-widths where it gave them."""
    return config_for(fit.film, film_bounds(fit.film, spread, band_spreads(fit)), curve, dq)


def start_from_profile(z, sld, band=None, n_layers: int | None = None, beam_from: str = "ambient",
                       dq: float | None = None, *, curve: Curve | None = None,
                       max_layers: int = DEFAULT_MAX_LAYERS, spread: Spread = DEFAULT_SPREAD) -> dict:
    """A fit configuration from an SLD profile (z in Å, SLD in 10⁻⁶ Å⁻²; ``band`` = (lo, hi)):
    the profile's slab film (``slabify``), bounds from the band or from ``spread``, the background
    from ``curve``'s high-Q floor when given, and ``dq`` (FWHM fraction) for curves without dQ."""
    fit = slabify(z, sld, n_layers=n_layers, max_layers=max_layers, band=band, beam_from=beam_from)
    return config_from_fit(fit, spread, curve=curve, dq=dq)


def start_from_model(model_dir, curve: Curve, n_layers: int | None = None,
                     use_prior: bool = True) -> tuple[dict, Analysis]:
    """(fit configuration, the network's analysis of ``curve``): the model's predicted profile
    (``Analysis.z``, ``.sld``; with ``.notes`` on how the curve met the model's Q grid, which start
    was made, and ``.agreement`` of the profile with the data) read as the model's prior (its film
    and bounds, fitted to the profile) when the model has one, ``use_prior`` and no ``n_layers``, else
    made into ``n_layers`` slabs (or as many as BIC picks); the model's beam side and dQ/Q."""
    analysis = analyse_with_model(model_dir, curve)
    meta = ModelMeta.read(model_dir)
    if use_prior and n_layers is None and meta.prior:
        # The prior's own parameters fitted to the profile: on held-out curves of the default prior this
        # start refines to a lower χ² than slabs (bench/bench_fit.py); a prior the fit cannot take → slabs.
        try:
            film, bounds, rms = prior_film_for_profile(meta.prior, analysis.z, analysis.sld)
            config = config_for(Film(film.layers, meta.beam_from, film.name), bounds, curve, meta.dq)
            FitConfig.parse(config, 1)
        except InvalidInput:
            pass
        else:
            note = (f"start: the model's prior ({len(bounds)} parameters) fitted to the predicted profile "
                    f"(rms {rms:.3g} × 10⁻⁶ Å⁻²)")
            return config, replace(analysis, notes=(*analysis.notes, note))
    config = start_from_profile(analysis.z, analysis.sld, n_layers=n_layers, beam_from=meta.beam_from,
                                dq=meta.dq, curve=curve)
    return config, replace(analysis, notes=(*analysis.notes, "start: the predicted profile cut into slabs"))
