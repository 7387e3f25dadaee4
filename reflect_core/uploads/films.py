"""Films (layer stacks) as JSON.

Guards against: JSON that is not a valid film (``film_from_json`` checks every field),
JSON nested deeply enough to exhaust the parser's recursion, and SLDs in Å⁻² instead of
10⁻⁶ Å⁻².
"""

from __future__ import annotations

import numpy as np

from reflect_core.physics.film import Film, FilmError, film_from_json
from reflect_core.uploads.common import check_sld_units, error


def film_json(filename: str, data: bytes) -> tuple[Film, str]:
    """A film: (film, description)."""
    try:
        film = film_from_json(data)
    except FilmError as exc:
        raise error(filename, str(exc)) from None
    except RecursionError:
        raise error(filename, "its JSON is nested too deeply to be a film") from None
    check_sld_units(filename, np.array([layer.sld for layer in film.layers]))
    name = f" {film.name!r}" if film.name else ""
    return film, f"film{name}: {len(film.layers)} layers, {film.total_thickness:g} Å between substrate and ambient"
