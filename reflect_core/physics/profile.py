"""SLD depth profiles and the reflectivity of an arbitrary profile (microslabs).

z = 0 at the substrate's top interface, increasing toward the ambient; each
interface is an error function of width σ = the layer's roughness, the same
interfaces that Névot–Croce describes in the slab model. ``_erf_profile_numpy`` is the
numba kernel's numpy twin, used while ``warmup`` compiles it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from reflect_core.physics import warmup
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.threads import serial_if_small

DEFAULT_PROFILE_POINTS = 900
PROFILE_MARGIN_SIGMAS = 4.0  # the bulk is reached within 4σ of the outer interfaces
PROFILE_MARGIN_MIN = 10.0  # Å of bulk shown beyond the outer interfaces


def interface_positions(stacks: np.ndarray) -> np.ndarray:
    """(B, L-1) z of interface k (between layers k and k+1), film order."""
    thickness = stacks[:, 1:-1, 2]
    return np.concatenate((np.zeros((stacks.shape[0], 1)), np.cumsum(thickness, axis=1)), axis=1)


def auto_z(stacks: np.ndarray, n_points: int = DEFAULT_PROFILE_POINTS) -> np.ndarray:
    """One z grid (Å) that covers every film of the batch from substrate to ambient bulk: past the outer
    interfaces and past every inner one's decay (a very rough interface under a thin top layer reaches
    beyond the top interface)."""
    z_int = interface_positions(stacks)
    reach = PROFILE_MARGIN_SIGMAS * stacks[:, :-1, 3]
    reach[:, [0, -1]] = np.maximum(reach[:, [0, -1]], PROFILE_MARGIN_MIN)
    return np.linspace(float(np.min(z_int - reach)), float(np.max(z_int + reach)), n_points)


ERF_REACH = 7.0  # σ: beyond this an erf interface is a step to 1e-12
_erf = np.vectorize(math.erf, otypes=[float])  # the compiled kernel's erf (scipy.special: ~0.5 s to import)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _erf_profile(stacks, z_int, z, column, integrated, out):  # pragma: no cover - compiled
    # integrated=False: ρ(z) = ρ_0 + Σ_k Δρ_k Φ((z - z_k)/σ_k).
    # integrated=True: its antiderivative ∫ρ dz, for exact slab averages.
    # z is sorted, so each interface touches a contiguous run of points with its
    # erf and is a plain step beyond: the erf is evaluated only within ERF_REACH σ.
    n_films, n_layers = stacks.shape[0], stacks.shape[1]
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    inv_sqrt2pi = 1.0 / math.sqrt(2.0 * math.pi)
    for b in numba.prange(n_films):
        base = stacks[b, 0, column]
        for j in range(z.size):
            out[b, j] = base * z[j] if integrated else base
        for k in range(n_layers - 1):
            step = stacks[b, k + 1, column] - stacks[b, k, column]
            if step == 0.0:
                continue
            sigma = stacks[b, k, 3]
            centre = z_int[b, k]
            reach = ERF_REACH * sigma
            lo = np.searchsorted(z, centre - reach)
            hi = np.searchsorted(z, centre + reach, side="right")
            for j in range(lo, hi):
                dz = z[j] - centre
                if sigma > 0.0:
                    u = dz / sigma
                    cdf = 0.5 * (1.0 + math.erf(u * inv_sqrt2))
                    if integrated:
                        out[b, j] += step * sigma * (u * cdf + inv_sqrt2pi * math.exp(-0.5 * u * u))
                    else:
                        out[b, j] += step * cdf
                elif dz == 0.0 and not integrated:
                    out[b, j] += 0.5 * step
            for j in range(hi, z.size):  # fully past the interface
                out[b, j] += step * (z[j] - centre) if integrated else step


def _erf_profile_numpy(stacks, z_int, z, column, integrated, out):
    """``_erf_profile`` in numpy: one interface at a time, over its run of points."""
    inv_sqrt2, inv_sqrt2pi = 1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0 * math.pi)
    for b in range(stacks.shape[0]):
        base = stacks[b, 0, column]
        out[b] = base * z if integrated else base
        for k in range(stacks.shape[1] - 1):
            step = stacks[b, k + 1, column] - stacks[b, k, column]
            if step == 0.0:
                continue
            sigma, centre = stacks[b, k, 3], z_int[b, k]
            lo = np.searchsorted(z, centre - ERF_REACH * sigma)
            hi = np.searchsorted(z, centre + ERF_REACH * sigma, side="right")
            dz = z[lo:hi] - centre
            if sigma > 0.0:
                u = dz / sigma
                cdf = 0.5 * (1.0 + _erf(u * inv_sqrt2))
                out[b, lo:hi] += (step * sigma * (u * cdf + inv_sqrt2pi * np.exp(-0.5 * u * u)) if integrated
                                  else step * cdf)
            elif not integrated:
                out[b, lo:hi] += np.where(dz == 0.0, 0.5 * step, 0.0)
            out[b, hi:] += step * (z[hi:] - centre) if integrated else step


def _profile(stacks, z, column: int, integrated: bool) -> np.ndarray:
    out = np.empty((stacks.shape[0], z.size))
    kernel = _erf_profile if warmup.use_compiled() else _erf_profile_numpy
    with serial_if_small(out.size):
        kernel(stacks, interface_positions(stacks), z, column, integrated, out)
    return out


def sld_profile(stacks: np.ndarray, z: np.ndarray | None = None, *, absorption: bool = False):
    """SLD (or iSLD) profiles, shape (B, M), on ``z`` (Å; default: ``auto_z``).

    ``stacks`` are (B, L, 4) in film order (substrate first). Returns (z, profiles).
    """
    stacks = np.ascontiguousarray(stacks, dtype=np.float64)
    if stacks.ndim == 2:
        stacks = stacks[None]
    z = auto_z(stacks) if z is None else np.ascontiguousarray(z, dtype=np.float64)
    return z, _profile(stacks, z, 1 if absorption else 0, integrated=False)


def film_microslabs(stacks: np.ndarray, step: float = 0.5) -> np.ndarray:
    """The slab model's own profile as microslabs of ``step`` Å, each holding
    the exact mean of the erf profile over its extent (so a sharp interface
    keeps its position, which point samples cannot do)."""
    stacks = np.ascontiguousarray(stacks, dtype=np.float64)
    z0, z1 = auto_z(stacks, 2)
    edges = np.arange(z0, z1 + step, step)
    n_films = stacks.shape[0]
    slabs = np.zeros((n_films, edges.size + 1, 4))
    for column in (0, 1):
        _, ends = sld_profile(stacks, edges[[0, -1]], absorption=bool(column))
        mean = np.diff(_profile(stacks, edges, column, integrated=True), axis=1) / step
        slabs[:, 0, column], slabs[:, 1:-1, column], slabs[:, -1, column] = ends[:, 0], mean, ends[:, -1]
    slabs[:, 1:-1, 2] = step
    return slabs


def microslab_stacks(z: np.ndarray, sld: np.ndarray, isld: np.ndarray | None = None) -> np.ndarray:
    """Slabs between consecutive z points with the mean SLD of their ends.

    Row 0 is the substrate (the profile's first value), the last row the
    ambient (its last value): the profile must reach bulk at both ends.
    """
    z = np.asarray(z, dtype=float)
    sld = np.atleast_2d(np.asarray(sld, dtype=float))
    isld = np.zeros_like(sld) if isld is None else np.atleast_2d(np.asarray(isld, dtype=float))
    if z.ndim != 1 or z.size < 2 or sld.shape[-1] != z.size or isld.shape != sld.shape:
        raise ValueError(f"profile shapes do not match: z {z.shape}, sld {sld.shape}, isld {isld.shape}")
    dz = np.diff(z)
    if np.any(dz <= 0):
        raise ValueError("z must increase strictly")
    n_films, n_z = sld.shape
    stacks = np.zeros((n_films, n_z + 1, 4))
    stacks[:, 0, 0], stacks[:, 0, 1] = sld[:, 0], isld[:, 0]
    stacks[:, 1:-1, 0] = 0.5 * (sld[:, 1:] + sld[:, :-1])
    stacks[:, 1:-1, 1] = 0.5 * (isld[:, 1:] + isld[:, :-1])
    stacks[:, 1:-1, 2] = dz
    stacks[:, -1, 0], stacks[:, -1, 1] = sld[:, -1], isld[:, -1]
    return stacks


def profile_reflectivity(z, sld, q, dq: float = 0.0, *, isld=None, **kwargs) -> np.ndarray:
    """R(Q) of arbitrary SLD profiles (B, M) on z (Å), beam from the ambient (high z)."""
    return reflectivity(microslab_stacks(z, sld, isld), q, dq, **kwargs)

