"""A training prior: a film plus bounds on some of its parameters.

Bounds use pyreflect's ``layer_bound`` form ``{"i": layer index (substrate 0),
"par": "sld" | "isld" | "thickness" | "roughness", "bounds": [lo, hi]}``;
parameters without bounds keep the film's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import LAYER_FIELDS, Film, film_from_dict

SAMPLERS = ("latin_hypercube", "uniform")


class PriorError(InvalidInput):
    """Bounds that cannot be sampled; the message names the entry and field."""


@dataclass(frozen=True)
class Bound:
    layer: int
    par: str
    lo: float
    hi: float

    def to_dict(self) -> dict:
        return {"i": self.layer, "par": self.par, "bounds": [self.lo, self.hi]}


@dataclass(frozen=True)
class Prior:
    film: Film
    bounds: tuple[Bound, ...]

    def to_dict(self) -> dict:
        return {"film": self.film.to_dict(), "bounds": [b.to_dict() for b in self.bounds]}

    @property
    def free(self) -> tuple[Bound, ...]:
        return tuple(b for b in self.bounds if b.hi > b.lo)

    def sample(self, n: int, seed: int, sampler: str = "latin_hypercube") -> np.ndarray:
        """(n, L, 4) stacks in film order (substrate first)."""
        if sampler not in SAMPLERS:
            raise PriorError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        rng = np.random.default_rng(seed)
        unit = _latin_hypercube(rng, n, len(self.bounds)) if sampler == "latin_hypercube" else rng.random(
            (n, len(self.bounds)))
        stacks = np.repeat(self.film.as_array()[None], n, axis=0)
        for k, bound in enumerate(self.bounds):
            stacks[:, bound.layer, LAYER_FIELDS.index(bound.par)] = bound.lo + (bound.hi - bound.lo) * unit[:, k]
        return stacks

    def extreme_stacks(self) -> np.ndarray:
        """The film with every bounded parameter at its low, then its high end."""
        lo, hi = self.film.as_array(), self.film.as_array()
        for bound in self.bounds:
            column = LAYER_FIELDS.index(bound.par)
            lo[bound.layer, column], hi[bound.layer, column] = bound.lo, bound.hi
        return np.stack([lo, hi])


def _latin_hypercube(rng, n: int, dims: int) -> np.ndarray:
    # One sample per stratum of each parameter, strata paired at random.
    strata = np.argsort(rng.random((dims, n)), axis=1).T
    return (strata + rng.random((n, dims))) / n


def parse_bounds(raw, film: Film) -> tuple[Bound, ...]:
    if not isinstance(raw, (list, tuple)):
        raise PriorError("bounds must be a list of {\"i\", \"par\", \"bounds\": [lo, hi]} entries")
    seen = set()
    bounds = []
    n_layers = len(film.layers)
    for k, entry in enumerate(raw):
        where = f"bound #{k + 1}"
        if not isinstance(entry, dict):
            raise PriorError(f"{where}: expected an object with i, par, bounds")
        layer, par, pair = entry.get("i"), entry.get("par"), entry.get("bounds")
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise PriorError(f"{where}: 'i' must be a layer index 0..{n_layers - 1}, got {layer!r}")
        place = "the substrate" if layer == 0 else "the ambient" if layer == n_layers - 1 else f"layer {layer}"
        # Named as the bounds table shows it (the entry's number, counted from 1, only for files).
        where = f"the {par} range of {place} ({film.layers[layer].name!r}; bound #{k + 1})"
        if par not in LAYER_FIELDS:
            raise PriorError(f"bound #{k + 1}: 'par' must be one of {LAYER_FIELDS}, got {par!r}")
        if par == "thickness" and layer in (0, n_layers - 1):
            raise PriorError(f"{where}: the substrate's and ambient's thickness is not used; remove this bound")
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise PriorError(f"{where}: 'bounds' must be [lo, hi]")
        try:
            lo, hi = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            raise PriorError(f"{where}: bounds must be numbers, got {pair!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise PriorError(f"{where}: bounds must be finite, got {pair!r}")
        if lo > hi:
            raise PriorError(f"{where}: its min {lo:g} is above its max {hi:g}")
        if par != "sld" and lo < 0:
            raise PriorError(f"{where}: {par} cannot be negative (min {lo:g})")
        if (layer, par) in seen:
            raise PriorError(f"{where}: this parameter is bounded twice")
        seen.add((layer, par))
        bounds.append(Bound(layer, par, lo, hi))
    return tuple(bounds)


def prior_from_dict(raw: dict) -> Prior:
    if not isinstance(raw, dict) or "film" not in raw:
        raise PriorError("a prior needs a 'film' and a 'bounds' list")
    film = film_from_dict(raw["film"])
    return Prior(film=film, bounds=parse_bounds(raw.get("bounds", []), film))


def free_parameters(film: Film) -> list[tuple[int, str]]:
    """(layer, parameter) pairs that a prior can vary: thickness only inside the stack,
    roughness of every interface, SLD and absorption of every layer."""
    last = len(film.layers) - 1
    pairs = []
    for i in range(len(film.layers)):
        for par in LAYER_FIELDS:
            if (par == "thickness" and i in (0, last)) or (par == "roughness" and i == last):
                continue
            pairs.append((i, par))
    return pairs


def suggest_bounds(film: Film, fraction: float = 0.25) -> tuple[Bound, ...]:
    """±fraction around each thickness, roughness and inner-layer SLD (a starting point to edit)."""
    last = len(film.layers) - 1
    bounds = []
    for i, par in free_parameters(film):
        value = getattr(film.layers[i], par)
        if par == "isld" or (par == "sld" and i in (0, last)) or value == 0:
            continue
        spread = abs(value) * fraction
        bounds.append(Bound(i, par, max(value - spread, 0.0) if par != "sld" else value - spread, value + spread))
    return tuple(bounds)
