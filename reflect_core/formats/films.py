"""Film files on disk (the command line's FILM.json): read with a size bound, parsed as a film."""

from __future__ import annotations

from reflect_core.base.storage import read_bounded
from reflect_core.physics.film import MAX_FILM_BYTES, Film, FilmError, film_from_json


def load_film(path) -> Film:
    try:
        text = read_bounded(path, MAX_FILM_BYTES)
    except OSError as exc:
        raise FilmError(f"cannot read film file {path}: {exc.strerror}") from None
    return film_from_json(text)
