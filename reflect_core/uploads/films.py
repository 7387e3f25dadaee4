"""Films (layer stacks) as JSON.

Guards against: JSON that is not a valid film (``film_from_dict`` checks every field),
JSON nested deeper than ``MAX_JSON_DEPTH`` levels (the parser's RecursionError is the same
refusal), integers too long for Python to convert or too large for a float, and SLDs in Å⁻²
instead of 10⁻⁶ Å⁻².
"""

from __future__ import annotations

import numpy as np

from reflect_core.physics.film import MAX_FILM_BYTES, Film, FilmError, film_from_dict
from reflect_core.uploads.common import check_sld_units, error, load_json


def film_json(filename: str, data: bytes) -> tuple[Film, str]:
    """A film: (film, description)."""
    if len(data) > MAX_FILM_BYTES:
        raise error(filename, f"a film file is at most {MAX_FILM_BYTES:,} bytes, this one is {len(data):,}")
    raw = load_json(filename, data)
    try:
        film = film_from_dict(raw)
    except FilmError as exc:
        raise error(filename, str(exc)[:300]) from None
    except (ValueError, OverflowError, RecursionError):  # a number Python cannot convert, however it is nested
        raise error(filename, "holds a number too long or too large to be a film's value") from None
    check_sld_units(filename, np.array([layer.sld for layer in film.layers]))
    name = f" {film.name!r}" if film.name else ""
    return film, f"film{name}: {len(film.layers)} layers, {film.total_thickness:g} Å between substrate and ambient"
