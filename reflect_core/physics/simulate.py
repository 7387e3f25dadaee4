"""One film → its curve and profile, with the settings a user chooses."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import Film, flip_stack
from reflect_core.physics.profile import DEFAULT_PROFILE_POINTS, auto_z, film_microslabs, sld_profile
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.resolution import (
    FWHM_TO_SIGMA,
    N_SIGMA,
    POINTS_PER_SIGMA,
    SHARP_FEATURES_BELOW_Q,
    SMOOTH_POINTS_PER_SIGMA,
    THICKNESS_BUCKET,
    critical_edge,
    resolution_fwhm,
)

PYREFLECT_DQ = 0.0294855  # pyreflect's default dQ/Q (FWHM)
# pyreflect's generator (ReflectivityModel) writes its curves on this log-spaced grid:
# not exactly 0.0081–0.1975 Å⁻¹, which only its unused second model class uses.
PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ = 0.008101436040354381, 0.1975709062238298, 308

# Physical upper bounds of what a user types (the explorer, datasets, the command line).
MAX_Q = 2.0  # Å⁻¹: reflectivity is below 1e-10 past ~0.5 and NR never measures past ~1
MAX_Q_POINTS = 20_000  # more than any reduced measurement (a few hundred to a few thousand)
MAX_DQ = 0.5  # FWHM fraction: real instruments run 1-10 %; a wider kernel resolves nothing
MAX_SCALE = 100.0  # a normalisation factor near 1
MAX_BACKGROUND = 1.0  # R units: reflectivity itself is at most 1
# The resolution convolution's work (physics.resolution): each output point's ±N_SIGMA·σ window
# holds nodes in proportion to σ and to the film's thickness, so a thick film on a long, finely
# smeared grid needs millions of weights (~50 bytes each while built, ~12 cached per grid).
MAX_SMEARING_WEIGHTS = 2_000_000
# The graded curve: microslabs of 0.5 Å through the whole film, times the Q nodes (~1 s per 2e8).
MAX_GRADED_WORK = 400_000_000


@dataclass(frozen=True)
class CurveSettings:
    dq: float = PYREFLECT_DQ  # FWHM as a fraction of Q
    scale: float = 1.0
    background: float = 0.0

    def __post_init__(self):
        for name, high in (("dq", MAX_DQ), ("scale", MAX_SCALE), ("background", MAX_BACKGROUND)):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InvalidInput(f"{name} must be a finite number ≥ 0, got {value!r}")
            if value > high:
                raise InvalidInput(f"{name} must be at most {high:g}, got {value:g}")


def check_q_range(qmin: float, qmax: float, nq: int, where: str = "") -> None:
    """The physical bounds of a Q grid (Å⁻¹); InvalidInput names the setting."""
    if not (math.isfinite(qmin) and math.isfinite(qmax)) or not 0 < qmin < qmax <= MAX_Q:
        raise InvalidInput(f"{where}need 0 < Q min < Q max ≤ {MAX_Q:g} Å⁻¹ (NR never goes past ~1), "
                           f"got Q min {qmin:g}, Q max {qmax:g}")
    if not 2 <= nq <= MAX_Q_POINTS:
        raise InvalidInput(f"{where}need 2 to {MAX_Q_POINTS:,} Q points, got {nq:,}")


def smearing_size(q: np.ndarray, dq: float, thickness: float) -> tuple[int, int]:
    """About how many (weights, fine Q nodes) the resolution convolution of this grid builds for
    films up to ``thickness`` Å thick, without building it: the nodes are m per σ (m grows with
    the thickness, for its fringes) and each point's ±N_SIGMA·σ window holds 2·N_SIGMA·m of them
    (physics.resolution; measured within 15 % of the real plan)."""
    q = np.sort(np.asarray(q, dtype=float))
    thickness = math.ceil(max(thickness, 1.0) / THICKNESS_BUCKET) * THICKNESS_BUCKET
    sigma = resolution_fwhm(q, dq) * FWHM_TO_SIGMA
    smeared = sigma > 1e-9 * q
    if not np.any(smeared):
        return q.size, q.size
    per_sigma = np.maximum(np.where(q < SHARP_FEATURES_BELOW_Q, POINTS_PER_SIGMA, SMOOTH_POINTS_PER_SIGMA),
                           (2.0 * thickness * sigma + 6.0) / (2.0 * math.pi))
    weights = int(np.sum(np.where(smeared, 2.0 * N_SIGMA * per_sigma + 2.0, 1.0)))
    density = per_sigma[smeared] / sigma[smeared]  # nodes per Å⁻¹
    spans = np.diff(q[smeared])
    inside = float(np.sum(np.minimum(spans, 2 * N_SIGMA * sigma[smeared][1:]) * 0.5 * (density[1:] + density[:-1])))
    tails = 2 * N_SIGMA * (per_sigma[smeared][0] + per_sigma[smeared][-1])
    return weights, int(inside + tails) + int(np.sum(~smeared)) + 1


def check_smearing(q: np.ndarray, dq: float, thickness: float, where: str = "") -> None:
    """InvalidInput when this grid, resolution and thickness would need too much memory."""
    weights, _ = smearing_size(q, dq, thickness)
    if weights > MAX_SMEARING_WEIGHTS:
        raise InvalidInput(
            f"{where}{np.size(q):,} Q points up to {np.max(q):g} Å⁻¹ with dQ/Q {100 * dq:g} % for a film "
            f"{thickness:g} Å thick need about {weights:,} resolution weights (limit {MAX_SMEARING_WEIGHTS:,}): "
            "use fewer Q points, a lower Q max, a finer resolution or a thinner film")


def check_curve_request(film: Film, q: np.ndarray, settings: CurveSettings, graded: bool = False) -> None:
    """What the explorer asks for, refused before anything big is allocated."""
    q = np.asarray(q, dtype=float)
    check_q_range(float(np.min(q)), float(np.max(q)), q.size)
    check_smearing(q, settings.dq, film.total_thickness)
    if graded:
        z0, z1 = auto_z(film.as_array()[None], 2)
        slabs = (z1 - z0) / 0.5  # film_microslabs' step
        nodes = smearing_size(q, settings.dq, z1 - z0)[1]
        if slabs * nodes > MAX_GRADED_WORK:
            raise InvalidInput(f"the graded curve of this film needs {slabs:,.0f} microslabs × {nodes:,} Q nodes "
                               f"(about {slabs * nodes / 2e8:,.0f} s per edit): turn it off, or use fewer Q points "
                               "or a thinner film")


def film_reflectivity(film: Film, q: np.ndarray, settings: CurveSettings = CurveSettings(), dq_abs=None) -> np.ndarray:
    """R(Q) of one film, shape (Nq,)."""
    return reflectivity(
        film, q, settings.dq, dq_abs=dq_abs, scale=settings.scale, background=settings.background
    )[0]


def fresnel_reflectivity(film: Film, q: np.ndarray, dq: float = 0.0) -> np.ndarray:
    """R_F(Q): the bare backing under the incident medium (the film's outer media, sharp), smeared with
    the resolution ``dq`` (FWHM dQ/Q) when given, so that R/R_F of a smeared curve has no spike at the
    critical edge. R/R_F leaves the film's own structure."""
    bare = Film(layers=(replace(film.layers[0], thickness=0.0, roughness=0.0),
                        replace(film.layers[-1], thickness=0.0, roughness=0.0)), beam_from=film.beam_from)
    return reflectivity(bare, np.asarray(q, dtype=float), dq)[0]


def critical_q(film: Film) -> float | None:
    """Q_c = 4√(π Δρ) (Å⁻¹) of total reflection at the backing, Δρ its SLD above the incident medium's;
    None when the backing's is not higher (no total reflection)."""
    q_c = float(critical_edge(film.beam_array()[None])[0])
    return q_c if math.isfinite(q_c) else None


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
