"""The reflectivity kernel: Parratt's recursion with Névot–Croce roughness.

Compiled with numba and parallel over (film, Q) pairs, so one film with many
points and many films with few points both use every core. numba rather than
numpy because the recursion runs layer by layer: numpy would make a full pass
over memory for each of ~15 complex operations per layer, numba makes one.

Frame: a (B, L, 4) array of [sld, isld, thickness, roughness] rows, substrate
(row 0) to ambient (row L-1), beam incident from the ambient. The ambient's own
absorption is ignored (the incident medium is taken as transparent, as in refnx).

``_parratt_numpy`` is the same recursion in numpy, vectorised over (film, Q) and looping
over layers: it serves while ``warmup`` compiles the numba kernel in the background
(compiling takes seconds; a page must not wait for it), and is tested equal to it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from reflect_core.physics import warmup
from reflect_core.physics.threads import serial_if_small

FOUR_PI_1E6 = 4.0 * math.pi * 1e-6  # SLD unit 1e-6 Å⁻² to Å⁻², times 4π


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _csqrt(re, im):  # pragma: no cover - compiled
    # Principal square root without cancellation for either sign of re.
    if im == 0.0:  # transparent layers: one real root, above or below their edge
        return complex(math.sqrt(re), 0.0) if re >= 0.0 else complex(0.0, math.sqrt(-re))
    mod = math.sqrt(re * re + im * im)
    if re >= 0.0:
        t = math.sqrt(0.5 * (mod + re))
        return complex(t, 0.5 * im / t) if t != 0.0 else 0j
    t = math.sqrt(0.5 * (mod - re))
    return complex(0.5 * abs(im) / t, math.copysign(t, im))


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _cexp(z):  # pragma: no cover - compiled
    # Transparent layers above their critical edge give purely real or purely
    # imaginary exponents: skip the transcendental calls that would return 1 or 0.
    if z.imag == 0.0:
        return complex(math.exp(z.real), 0.0)
    if z.real == 0.0:
        return complex(math.cos(z.imag), math.sin(z.imag))
    m = math.exp(z.real)
    return complex(m * math.cos(z.imag), m * math.sin(z.imag))


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _parratt(q, potential, absorption, thickness, sigma2, out):  # pragma: no cover - compiled
    # Per layer, precomputed: 4π(ρ - ρ_ambient) and 4π·iρ in Å⁻², thickness, roughness².
    n_films, n_layers = potential.shape[0], potential.shape[1]
    n_q = q.shape[1]
    q_per_film = q.shape[0] != 1
    for t in numba.prange(n_films * n_q):
        b = t // n_q
        i = t - b * n_q
        qi = q[b, i] if q_per_film else q[0, i]
        kk = 0.25 * qi * qi
        k_lo = _csqrt(kk - potential[b, 0], absorption[b, 0])
        x = 0j
        for m in range(1, n_layers):
            if m == n_layers - 1:
                k_hi = complex(0.5 * qi, 0.0)
            else:
                k_hi = _csqrt(kk - potential[b, m], absorption[b, m])
            # Fresnel coefficient of interface m-1 | m seen from above, r = a / c,
            # damped by Névot–Croce; x is the amplitude below, carried up
            # through layer m-1. One division: x' = (a + c x) / (c + a x).
            a = k_hi - k_lo
            c = k_hi + k_lo
            if m > 1:
                d = thickness[b, m - 1]
                if d != 0.0:
                    x *= _cexp(2j * d * k_lo)
            if a == 0.0:
                # Same medium on both sides (flat stretches of a microslab profile): no
                # reflection, and no 0/0 where both wavevectors vanish at a critical edge.
                k_lo = k_hi
                continue
            s2 = sigma2[b, m - 1]
            if s2 != 0.0:
                a *= _cexp(-2.0 * s2 * k_hi * k_lo)
            num = a + c * x
            den = c + a * x
            inv = 1.0 / (den.real * den.real + den.imag * den.imag)
            x = complex(
                (num.real * den.real + num.imag * den.imag) * inv,
                (num.imag * den.real - num.real * den.imag) * inv,
            )
            k_lo = k_hi
        out[b, i] = x.real * x.real + x.imag * x.imag


def _parratt_numpy(q, potential, absorption, thickness, sigma2, out):
    """``_parratt`` in numpy: the same operations in the same order, (film, Q) at once."""
    kk = 0.25 * q * q  # (1 or B, Nq)

    def wavevector(m):  # _csqrt's principal root; absorption ≥ 0 keeps the root in the upper half-plane
        arg = np.empty(np.broadcast_shapes(kk.shape, out.shape), dtype=complex)
        arg.real, arg.imag = kk - potential[:, m, None], absorption[:, m, None]
        return np.sqrt(arg)

    n_layers = potential.shape[1]
    k_lo, x = wavevector(0), np.zeros(out.shape, dtype=complex)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only where a == 0, which keeps x
        for m in range(1, n_layers):
            k_hi = np.broadcast_to(0.5 * q + 0j, x.shape) if m == n_layers - 1 else wavevector(m)
            a, c = k_hi - k_lo, k_hi + k_lo
            if m > 1:
                x = x * np.exp(2j * thickness[:, m - 1, None] * k_lo)  # exp(0) = 1 exactly where d = 0
            same = a == 0.0
            a = a * np.exp(-2.0 * sigma2[:, m - 1, None] * k_hi * k_lo)
            x = np.where(same, x, (a + c * x) / (c + a * x))
            k_lo = k_hi
    out[:] = x.real * x.real + x.imag * x.imag


def parratt(q: np.ndarray, stacks: np.ndarray) -> np.ndarray:
    """Unsmeared reflectivity, shape (B, Nq).

    ``q`` is (Nq,) shared by all films or (B, Nq); ``stacks`` is (B, L, 4).
    """
    stacks = np.ascontiguousarray(stacks, dtype=np.float64)
    if stacks.ndim != 3 or stacks.shape[2] != 4 or stacks.shape[1] < 2:
        raise ValueError(f"stacks must have shape (B, L>=2, 4), got {stacks.shape}")
    q = np.asarray(q, dtype=np.float64)
    q2 = np.ascontiguousarray(q.reshape(1, -1) if q.ndim == 1 else q)
    if q2.ndim != 2 or q2.shape[0] not in (1, stacks.shape[0]):
        raise ValueError(f"q must be (Nq,) or (B, Nq) with B={stacks.shape[0]}, got {q.shape}")
    out = np.empty((stacks.shape[0], q2.shape[1]), dtype=np.float64)
    potential = FOUR_PI_1E6 * (stacks[:, :, 0] - stacks[:, -1:, 0])
    absorption = FOUR_PI_1E6 * stacks[:, :, 1]
    kernel = _parratt if warmup.use_compiled() else _parratt_numpy
    with serial_if_small(out.size):
        kernel(q2, potential, absorption, np.ascontiguousarray(stacks[:, :, 2]),
               np.ascontiguousarray(stacks[:, :, 3] ** 2), out)
    return out
