"""One film → its curve and profile, with the settings a user chooses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import Film, flip_stack
from reflect_core.physics.profile import DEFAULT_PROFILE_POINTS, auto_z, film_microslabs, sld_profile
from reflect_core.physics.reflectivity import reflectivity

PYREFLECT_DQ = 0.0294855  # pyreflect's default dQ/Q (FWHM)
# pyreflect's generator (ReflectivityModel) writes its curves on this log-spaced grid:
# not exactly 0.0081–0.1975 Å⁻¹, which only its unused second model class uses.
PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ = 0.008101436040354381, 0.1975709062238298, 308


@dataclass(frozen=True)
class CurveSettings:
    dq: float = PYREFLECT_DQ  # FWHM as a fraction of Q
    scale: float = 1.0
    background: float = 0.0

    def __post_init__(self):
        for name in ("dq", "scale", "background"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InvalidInput(f"{name} must be a finite number ≥ 0, got {value!r}")


def film_reflectivity(film: Film, q: np.ndarray, settings: CurveSettings = CurveSettings(), dq_abs=None) -> np.ndarray:
    """R(Q) of one film, shape (Nq,)."""
    return reflectivity(
        film, q, settings.dq, dq_abs=dq_abs, scale=settings.scale, background=settings.background
    )[0]


def film_profile(film: Film, n_points: int = DEFAULT_PROFILE_POINTS):
    """(z, sld, isld) of one film on its automatic grid (Å, 1e-6 Å⁻²)."""
    stacks = film.as_array()[None]
    z, sld = sld_profile(stacks, auto_z(stacks, n_points))
    _, isld = sld_profile(stacks, z, absorption=True)
    return z, sld[0], isld[0]


def graded_reflectivity(film: Film, q: np.ndarray, settings: CurveSettings = CurveSettings(), dq_abs=None):
    """R(Q) of the film's graded erf profile (microslabs) instead of Névot–Croce.

    The two agree for small roughness; where they part is physics the user
    should see, not a numerical error.
    """
    stacks = film_microslabs(film.as_array()[None])
    if film.beam_from == "substrate":
        stacks = flip_stack(stacks)
    return reflectivity(
        stacks, q, settings.dq, dq_abs=dq_abs, scale=settings.scale, background=settings.background
    )[0]
