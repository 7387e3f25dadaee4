"""The explorer's downloads: the curve and the profile as CSV with what they are in ``#`` lines
(units, resolution, background, scale, the film as a line of film text), which readers skip."""

from __future__ import annotations

import numpy as np

from reflect_core.formats.curves import csv_text
from reflect_core.formats.film_text import film_to_text
from reflect_core.physics.film import Film


def _film_lines(film: Film) -> list[str]:
    return [f"film ({film.name or 'unnamed'}), substrate first, SLD in 1e-6 A^-2, thickness and roughness in A:",
            film_to_text(film), f"neutrons arrive from the {film.beam_from}"]


def curve_csv(film: Film, q: np.ndarray, r: np.ndarray, dq: float, background: float, scale: float) -> str:
    """Q (A^-1) and R of the film, with the instrument settings it was computed for."""
    return csv_text(["Q", "R"], [q, r], [
        "reflectivity computed by reflect_core (Parratt, Nevot-Croce roughness)",
        "Q in A^-1; R dimensionless",
        f"resolution: Gaussian, dQ/Q = {100 * dq:g} % FWHM; scale {scale:g}; "
        f"background {background:g} (added after smearing)",
        *_film_lines(film)])


def profile_csv(film: Film, z: np.ndarray, sld: np.ndarray, isld: np.ndarray) -> str:
    """z (A, 0 at the substrate's top interface), SLD and iSLD (1e-6 A^-2) of the film."""
    return csv_text(["z", "sld", "isld"], [z, sld, isld], [
        "SLD profile (error-function interfaces) computed by reflect_core",
        "z in A from the substrate's top interface; sld and isld (absorption) in 1e-6 A^-2",
        *_film_lines(film)])
