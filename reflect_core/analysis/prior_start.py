"""A network's profile read in the terms of the prior it was trained on.

A model's ``model.json`` keeps its prior (the film and the bounds of the parameters that varied).
A curve the network explains is, by construction, one of that prior's films; so the best start for
a refinement is the prior's own parameterisation fitted to the predicted profile, within the
prior's bounds, and the fit then varies exactly those parameters. This keeps the layer count and
the parameters the scientist chose, where cutting the profile into slabs (``slabify``) has to guess
both. Measured on held-out curves of the default prior (bench/bench_fit.py): see the README.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import LAYER_FIELDS, Film, Layer, film_from_dict
from reflect_core.physics.profile import sld_profile

CANDIDATES = 4000  # random prior films scored at once (one batched profile call, ~30 MB for 900 z points)
MIN_CANDIDATES, PROFILE_BUDGET = 200, 4e7  # candidates × layers × z points: ~0.3 s here
POLISHED = 4  # the best candidates each polished by bounded least squares
COLUMN = {field: k for k, field in enumerate(LAYER_FIELDS)}  # Film.as_array's columns


def varying_bounds(prior: dict) -> list[dict]:
    """The prior's bounds with a real range (a bound with lo == hi only fixes a value). A model's
    prior is a free-form part of its model.json (an uploaded model's too): InvalidInput when a bound
    is not ``{"i": layer index, "par": one of LAYER_FIELDS, "bounds": [lo, hi]}`` with finite lo ≤ hi."""
    if not isinstance(prior, dict) or not isinstance(prior.get("film"), dict):
        raise InvalidInput("the model's prior has no film")
    layers = prior["film"].get("layers")
    n = len(layers) if isinstance(layers, list) else 0
    found = []
    for k, b in enumerate(prior.get("bounds") or []):
        pair = b.get("bounds") if isinstance(b, dict) else None
        i = b.get("i") if isinstance(b, dict) else None
        if (isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n or b.get("par") not in COLUMN
                or not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in pair)
                or pair[0] > pair[1]):
            raise InvalidInput(f"the model's prior: bound {k + 1} is not a layer index, parameter and [lo, hi]")
        if pair[1] > pair[0]:
            found.append(b)
    return found


def prior_film_for_profile(prior: dict, z, sld, seed: int = 0) -> tuple[Film, list[dict], float]:
    """(the prior's film with its varying parameters fitted to the profile ``sld`` on ``z``, those
    bounds, the rms misfit of the profile in 10⁻⁶ Å⁻²). InvalidInput when the prior varies nothing."""
    film = film_from_dict(prior["film"])
    bounds = varying_bounds(prior)
    if not bounds:
        raise InvalidInput("the model's prior varies no parameter: there is nothing to start from")
    where = [(int(b["i"]), COLUMN[b["par"]]) for b in bounds]
    lo = np.array([float(b["bounds"][0]) for b in bounds])
    hi = np.array([float(b["bounds"][1]) for b in bounds])
    base = film.as_array()
    z, sld = np.asarray(z, dtype=float), np.asarray(sld, dtype=float)

    def stacks(x: np.ndarray) -> np.ndarray:
        out = np.repeat(base[None], len(x), axis=0)
        for j, (i, column) in enumerate(where):
            out[:, i, column] = x[:, j]
        return out

    rng = np.random.default_rng(seed)
    # Fewer candidates for a film of many layers: the batched profile costs candidates × layers × z points.
    n_candidates = max(MIN_CANDIDATES, min(CANDIDATES, int(PROFILE_BUDGET // (len(film.layers) * max(z.size, 1)))))
    population = lo + (hi - lo) * rng.random((n_candidates, len(bounds)))
    population[0] = np.clip([base[i, column] for i, column in where], lo, hi)  # the prior's own film
    misfit = ((sld_profile(stacks(population), z)[1] - sld) ** 2).sum(axis=1)
    best = None
    for x0 in population[np.argsort(misfit)[:POLISHED]]:
        found = least_squares(lambda x: sld_profile(stacks(x[None]), z)[1][0] - sld, x0, bounds=(lo, hi))
        if best is None or found.cost < best.cost:
            best = found
    fitted = stacks(best.x[None])[0]
    layers = [Layer(layer.name, *map(float, fitted[i])) for i, layer in enumerate(film.layers)]
    rms = float(np.sqrt(2 * best.cost / z.size))
    return Film(tuple(layers), film.beam_from, film.name), bounds, rms
