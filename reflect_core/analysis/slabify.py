"""A slab film from an SLD depth profile: the start of a refinement fit from a network's profile.

The profile (z in Å, z = 0 at the substrate's top interface and increasing toward the ambient;
SLD in 10⁻⁶ Å⁻²) is described as a substrate, k inner layers and an ambient, each interface an
error function of width σ: the app's own profile (``physics.profile.sld_profile``), so the slab
film draws the profile it came from. For each k the parameters are fitted by least squares from
three deterministic starts (the best step function, the largest slopes, the k − 1 fit split where
it misses most); k itself is chosen by BIC (``_bic``) unless the caller gives it.

The first interface's position is fitted too (``SlabFit.offset``): it is ≈ 0 for profiles on this
app's z convention, and absorbs the shift of profiles that start elsewhere (pyreflect's labels
start at the lowest interface minus 3σ).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

import numba
import numpy as np
from scipy.optimize import least_squares
from scipy.special import ndtr
from threadpoolctl import threadpool_limits

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import BEAM_SIDES, MAX_ROUGHNESS, MAX_SLD, MAX_THICKNESS, Film, Layer
from reflect_core.physics.profile import sld_profile

DEFAULT_MAX_LAYERS = 6
MAX_SLAB_LAYERS = 12  # inner layers: a profile that needs more is a graded film, better fitted as one
MIN_POINTS = 10
MAX_POINTS = 100_000  # as a model's z grid (ml.meta.MAX_GRID_POINTS)
# Longer profiles are fitted on this many of their points (real samples, evenly spread): bounded work
# on any grid, and matrices below the size where OpenBLAS starts threads, which on a busy machine costs
# 100× (a 900 × 22 SVD: 80 ms of CPU, 300 × 22: 0.2 ms). ``rms`` is measured on every point.
FIT_POINTS = 300
END_POINTS = 5  # the substrate's and the ambient's starting SLD: the median of the first / last points
MIN_THICKNESS = 0.5  # Å, the thinnest inner layer the fit may shrink to
SCOUT_EVALUATIONS = 30  # per start, before the best start is run on
MAX_EVALUATIONS = 300  # a superfluous layer crawls along a flat valley; its count is lost anyway
MIN_SIGMA = 0.1  # Å: a sharper interface is a step on any profile grid the networks predict
# BIC's variance estimate is floored at (FLOOR_REL · SLD span)²: on an exact, noise-free profile the
# true layer count fits to round-off, and without a floor a spurious extra layer that shaves round-off
# would win. 1e-3 of the span is far above float32 storage (1e-7) and far below any network's error.
FLOOR_REL = 1e-3
FLOOR_ABS = 1e-6  # 10⁻⁶ Å⁻², the floor of a flat profile (span 0)
SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class LayerCount:
    """One row of the information-criterion table."""

    k: int  # inner layers
    n_params: int  # fitted parameters: offset, k + 2 SLDs, k thicknesses, k + 1 roughnesses
    rms: float  # rms misfit of the fitted profile, 10⁻⁶ Å⁻²
    bic: float


@dataclass(frozen=True)
class SlabFit:
    film: Film
    k: int  # inner layers of ``film``
    chosen_by: str  # "BIC" or "given"
    criteria: tuple[LayerCount, ...]  # every k fitted: 0 … max_layers (or n_layers), fewer once BIC cannot drop
    rms: float  # rms misfit of the film's profile against the input profile, 10⁻⁶ Å⁻²
    offset: float  # z of the substrate's interface in the input's frame, Å
    interfaces: np.ndarray  # z of each interface in the input's frame, Å
    effective_points: float  # of the points fitted, those BIC counted as independent (``_bic``)
    band: tuple | None = None  # (z, lo, hi) sorted by z when a band was given (``start.band_spreads`` reads it)

    def profile(self, z) -> np.ndarray:
        """The film's SLD profile on ``z`` of the input's frame."""
        return sld_profile(self.film.as_array(), np.asarray(z, float) - self.offset)[1][0]


# ---- inputs ---------------------------------------------------------------------------------------

def _array(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name}: expected a list of numbers") from None
    if arr.ndim != 1:
        raise InvalidInput(f"{name}: expected one row of numbers, got an array of shape {arr.shape}")
    if arr.size > MAX_POINTS:
        raise InvalidInput(f"{name}: at most {MAX_POINTS:,} points, got {arr.size:,}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name}: {int(np.sum(~np.isfinite(arr)))} values are NaN or infinite")
    return arr


def check_profile(z, sld, band=None):
    """(z, sld, lo, hi) as float arrays sorted by z; InvalidInput names the input at fault."""
    z, sld = _array(z, "profile z"), _array(sld, "profile SLD")
    if z.size != sld.size:
        raise InvalidInput(f"profile: {z.size} z values but {sld.size} SLD values")
    if z.size < MIN_POINTS:
        raise InvalidInput(f"profile: at least {MIN_POINTS} points are needed, got {z.size}")
    order = np.argsort(z, kind="stable")
    z, sld = z[order], sld[order]
    if np.any(np.diff(z) <= 0):
        raise InvalidInput("profile z: values repeat; each depth must appear once")
    if np.max(np.abs(sld)) > MAX_SLD:
        raise InvalidInput(f"profile SLD: values beyond the physical bound |SLD| ≤ {MAX_SLD:g} 10⁻⁶ Å⁻²")
    if z[-1] - z[0] > MAX_THICKNESS:
        raise InvalidInput(f"profile z: spans {z[-1] - z[0]:g} Å, beyond the {MAX_THICKNESS:g} Å bound")
    if band is None:
        return z, sld, None, None
    if not isinstance(band, (tuple, list)) or len(band) != 2:
        raise InvalidInput("band: expected a pair (lo, hi) of SLD rows")
    lo, hi = (_array(b, f"band {side}") for b, side in zip(band, ("lo", "hi")))
    if lo.size != z.size or hi.size != z.size:
        raise InvalidInput(f"band: lo and hi need {z.size} values each (one per z), got {lo.size} and {hi.size}")
    lo, hi = lo[order], hi[order]
    if np.any(lo > hi):
        raise InvalidInput(f"band: lo is above hi at {int(np.sum(lo > hi))} points")
    return z, sld, lo, hi


def _count(value, name: str, high: int, n_points: int) -> int:
    """A layer count in [0, high]; high is MAX_SLAB_LAYERS or less on a short profile."""
    why = "" if high == MAX_SLAB_LAYERS else f" (k layers take 3k + 4 parameters, fewer than the {n_points} points)"
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInput(f"{name}: expected a whole number, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= high:
        raise InvalidInput(f"{name}: must be a whole number in [0, {high}]{why}, got {value!r}")
    return number


# ---- the model and its derivatives ----------------------------------------------------------------

def _unpack(x: np.ndarray, k: int):
    """x = [offset, ρ_0 … ρ_k+1, d_1 … d_k, σ_0 … σ_k] → (offset, ρ, d, σ)."""
    return x[0], x[1:k + 3], x[k + 3:2 * k + 3], x[2 * k + 3:]


def _model(x: np.ndarray, k: int, z: np.ndarray) -> np.ndarray:
    """The app's profile of the slabs x on z (the first interface at x[0])."""
    offset, rho, d, sigma = _unpack(x, k)
    stack = np.zeros((k + 2, 4))
    stack[:, 0], stack[1:-1, 2], stack[:-1, 3] = rho, d, sigma
    return sld_profile(stack, z - offset)[1][0]


def _jacobian(x: np.ndarray, k: int, z: np.ndarray) -> np.ndarray:
    """∂ρ(z)/∂x of ρ(z) = ρ_0 + Σ_j (ρ_j+1 − ρ_j) Φ((z − z_j)/σ_j), z_j = offset + d_1 + … + d_j."""
    offset, rho, d, sigma = _unpack(x, k)
    z_int = offset + np.concatenate(([0.0], np.cumsum(d)))
    u = (z[:, None] - z_int[None, :]) / sigma
    cdf, density = ndtr(u), np.exp(-0.5 * u * u) / (SQRT_2PI * sigma)
    step = np.diff(rho)
    d_zint = -step * density  # ∂ρ/∂z_j, (M, k + 1)
    jac = np.empty((z.size, x.size))
    jac[:, 0] = d_zint.sum(axis=1)
    ones = np.ones((z.size, 1))
    jac[:, 1:k + 3] = np.hstack((ones, cdf)) - np.hstack((cdf, 0 * ones))
    jac[:, k + 3:2 * k + 3] = np.cumsum(d_zint[:, ::-1], axis=1)[:, ::-1][:, 1:]
    jac[:, 2 * k + 3:] = d_zint * u
    return jac


# ---- starting points: the best step function ------------------------------------------------------

def _segmentations(z: np.ndarray, sld: np.ndarray, max_segments: int) -> dict[int, np.ndarray]:
    """{k: z of the k + 1 interfaces} of the least-squares step function with k + 2 segments, for
    every k up to ``max_segments`` − 2 (dynamic programming over prefix sums; interfaces midway
    between the last point of one segment and the first of the next)."""
    n = z.size
    s1, s2 = np.concatenate(([0.0], np.cumsum(sld))), np.concatenate(([0.0], np.cumsum(sld**2)))
    i, j = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
    length = np.where(j > i, j - i, 1)
    cost = np.where(j > i, (s2[j] - s2[i]) - (s1[j] - s1[i]) ** 2 / length, np.inf)  # SSE of sld[i:j]
    best = [cost[0]]  # best[s - 1][j]: the least SSE of sld[:j] in s segments
    arg = [np.zeros(n + 1, int)]
    for _ in range(1, max_segments):
        total = best[-1][:, None] + cost
        arg.append(np.argmin(total, axis=0))
        best.append(total[arg[-1], np.arange(n + 1)])
    found = {}
    for segments in range(2, max_segments + 1):
        cuts, end = [], n
        for s in range(segments - 1, 0, -1):
            end = int(arg[s][end])
            cuts.append(end)
        cuts = np.array(cuts[::-1])
        found[segments - 2] = 0.5 * (z[cuts - 1] + z[cuts])
    return found


def _peak_interfaces(z: np.ndarray, sld: np.ndarray, count: int) -> np.ndarray | None:
    """z of the ``count`` largest steps of the (lightly smoothed) profile: its slope split into runs
    at the minima of |slope|, each run's step its integral, its z the slope-weighted mean."""
    kernel = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    smooth = np.convolve(np.pad(sld, 3, mode="edge"), kernel / kernel.sum(), mode="valid")
    slope = np.gradient(smooth, z) * np.gradient(z)  # change of SLD per point
    size = np.abs(slope)
    minima = np.flatnonzero((size[1:-1] <= size[:-2]) & (size[1:-1] < size[2:])) + 1
    edges = np.concatenate(([0], minima, [z.size]))
    steps, centres = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        weight = size[a:b]
        if weight.sum() > 0:
            steps.append(abs(slope[a:b].sum()))
            centres.append(float(np.sum(z[a:b] * weight) / weight.sum()))
    if len(steps) < count:
        return None
    return np.sort(np.array(centres)[np.argsort(steps, kind="stable")[::-1][:count]])


def _start(z: np.ndarray, sld: np.ndarray, z_int: np.ndarray) -> np.ndarray | None:
    """Parameters of the step function with interfaces at ``z_int``: each layer's SLD the mean of
    its points (the outer media: the median of their END_POINTS outermost), σ from the profile's
    steepest slope near each interface. None when two interfaces share a gap between points."""
    cuts = np.searchsorted(z, z_int)
    if cuts[0] < 1 or cuts[-1] > z.size - 1 or np.any(np.diff(cuts) < 1):
        return None
    edges = [0, *cuts, z.size]
    rho = np.array([np.mean(sld[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    rho[0], rho[-1] = np.median(sld[:min(END_POINTS, cuts[0])]), np.median(sld[max(cuts[-1], z.size - END_POINTS):])
    slope = np.abs(np.gradient(sld, z))
    sigma = []
    for c, step in zip(cuts, np.abs(np.diff(rho))):
        steepest = np.max(slope[max(c - 3, 0):c + 3])
        sigma.append(step / (SQRT_2PI * steepest) if steepest > 0 else 1.0)
    gaps = np.diff(np.concatenate(([z[0]], z_int, [z[-1]])))
    sigma = np.clip(sigma, MIN_SIGMA, np.maximum(0.5 * np.minimum(gaps[:-1], gaps[1:]), MIN_SIGMA))
    d = np.maximum(np.diff(z_int), MIN_THICKNESS)
    return np.concatenate(([z_int[0]], rho, d, sigma))


def _bounds(z: np.ndarray, sld: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    span, width = max(np.ptp(sld), 0.1), z[-1] - z[0]
    lo = np.concatenate(([z[0] - width], np.full(k + 2, max(sld.min() - span, -MAX_SLD)),
                         np.full(k, MIN_THICKNESS), np.full(k + 1, MIN_SIGMA)))
    hi = np.concatenate(([z[-1]], np.full(k + 2, min(sld.max() + span, MAX_SLD)),
                         np.full(k, max(width, 2 * MIN_THICKNESS)), np.full(k + 1, min(width, MAX_ROUGHNESS))))
    return lo, hi


def _fit(z, sld, x0: np.ndarray, k: int, evaluations: int) -> tuple[np.ndarray, float]:
    lo, hi = _bounds(z, sld, k)
    result = least_squares(lambda x: _model(x, k, z) - sld, np.clip(x0, lo, hi), jac=lambda x: _jacobian(x, k, z),
                           bounds=(lo, hi), x_scale="jac", method="trf", ftol=1e-12, xtol=1e-10, gtol=1e-12,
                           max_nfev=evaluations)
    return result.x, float(np.sum(result.fun**2))


def _best_fit(z, sld, starts: list[np.ndarray], k: int) -> tuple[np.ndarray, float]:
    """Each start run for a few steps, the best of them run to convergence: a start in the right
    basin converges in a handful of steps, one in a wrong basin crawls."""
    return _fit(z, sld, min((_fit(z, sld, x0, k, SCOUT_EVALUATIONS) for x0 in starts), key=lambda p: p[1])[0], k,
                MAX_EVALUATIONS)


def _subset(z: np.ndarray) -> np.ndarray:
    """Indices of at most FIT_POINTS points, evenly spread, the first and last among them."""
    return np.unique(np.round(np.linspace(0, z.size - 1, min(z.size, FIT_POINTS))).astype(int))


def _candidates(z, sld, k: int, segmented: np.ndarray, previous: np.ndarray | None) -> list[np.ndarray]:
    """Starting interfaces for k inner layers: the best step function's, the k + 1 largest steps
    of the slope, and the fit with one layer fewer plus an interface where it misses most."""
    found = [segmented, _peak_interfaces(z, sld, k + 1)]
    if previous is not None:
        offset, _, d, _ = _unpack(previous, k - 1)
        missed = np.abs(np.convolve(_model(previous, k - 1, z) - sld, np.ones(3) / 3, mode="same"))
        found.append(np.sort(np.append(offset + np.concatenate(([0.0], np.cumsum(d))), z[np.argmax(missed)])))
    starts, seen = [], []
    for z_int in found:
        if z_int is None or any(np.allclose(z_int, other) for other in seen):
            continue
        seen.append(z_int)
        x0 = _start(z, sld, z_int)
        if x0 is not None:
            starts.append(x0)
    return starts


def _correlation_time(residual: np.ndarray) -> float:
    """Points per independent residual: 1 + 2 Σ ρ(lag) up to the autocorrelation's first drop to ≤ 0
    (Geyer's initial positive sequence, simplified); 1 for white noise."""
    r = residual - residual.mean()
    if not np.any(r):
        return 1.0
    spectrum = np.fft.rfft(r, 2 * r.size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:r.size]
    acf = acf[1:] / acf[0]
    stop = np.flatnonzero(acf <= 0)
    tau = 1.0 + 2.0 * float(acf[:stop[0] if stop.size else acf.size].sum())
    return float(np.clip(tau, 1.0, r.size / MIN_POINTS))


def _bic(rss: float, n: int, n_eff: float, n_params: int, floor2: float) -> float:
    """BIC of a fit with misfit rss over n points of which n_eff are independent.

    BIC, not AIC: AIC's penalty (2 per parameter) does not grow with the number of points, and
    keeps adding layers that model a network's errors; each spurious layer costs the refinement
    fit three poorly determined parameters. BIC's ln n per parameter (≈ 5.7 for 300 points) is
    consistent: it picks the true count as the profile is sampled finer. Both assume independent
    errors, which a network's are not (they are smooth ripples over many points): n_eff, the points
    over the residual's correlation time, is the count of independent ones."""
    return float(n_eff * math.log(max(rss / n, floor2)) + n_params * math.log(n_eff))


# ---- the layer count and the film ------------------------------------------------------------------

def slabify(z, sld, *, n_layers: int | None = None, max_layers: int = DEFAULT_MAX_LAYERS, band=None,
            beam_from: str = "ambient", names: tuple[str, str] = ("substrate", "ambient")) -> SlabFit:
    """The slab film (substrate, k inner layers, ambient) whose erf profile best matches ``sld`` on
    ``z``; k = ``n_layers`` when given, else the k in 0 … ``max_layers`` of least BIC (``criteria``
    lists every k fitted). ``band`` = (lo, hi) on z is checked and kept with the result (the fit's
    bounds are made from it: ``start.band_spreads``). Deterministic: no random starts."""
    z, sld, lo_band, hi_band = check_profile(z, sld, band)
    pick = _subset(z)
    fz, fs, n = z[pick], sld[pick], pick.size  # the points fitted
    largest = min(MAX_SLAB_LAYERS, (n - 5) // 3)  # at least one more point than parameters (3k + 4)
    given = None if n_layers is None else _count(n_layers, "n_layers", largest, n)
    # max_layers is capped by what the points allow; a count the user asks for is not
    top = given if given is not None else min(_count(max_layers, "max_layers", MAX_SLAB_LAYERS, n), largest)
    if beam_from not in BEAM_SIDES:
        raise InvalidInput(f"beam_from must be one of {BEAM_SIDES}, got {beam_from!r}")
    segmented = _segmentations(fz, fs, top + 2)
    floor2 = max(FLOOR_REL * float(np.ptp(sld)), FLOOR_ABS) ** 2
    fits, rows, previous, pruned, n_eff = {}, [], None, False, float(n)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # per thread: one 300-point profile is ~30 µs alone, ms with thread hand-offs
    # BLAS threads too (process-wide, restored after): in the app's server, after a torch prediction on a
    # busy machine, OpenBLAS's spinning threads made this 70–100 s instead of ~1 s.
    blas = threadpool_limits(limits=1, user_api="blas")
    try:
        for k in range(top + 1):
            if given is None and rows and min(r.bic for r in rows) < n * math.log(floor2) + (3 * k + 4) * math.log(n):
                pruned = True
                break  # no fit with k or more layers can beat it: its misfit term is at least the floor's
            x, rss = _best_fit(fz, fs, _candidates(fz, fs, k, segmented[k], previous), k)
            fits[k], previous = (x, rss), x
            rows.append(LayerCount(k=k, n_params=int(x.size), rms=math.sqrt(rss / n),
                                   bic=_bic(rss, n, n, x.size, floor2)))
        if not pruned and rss / n > floor2:  # a misfit above the floor: how many independent points is it?
            n_eff = n / _correlation_time(_model(x, k, fz) - fs)
            rows = [replace(row, bic=_bic(row.rms**2 * n, n, n_eff, row.n_params, floor2)) for row in rows]
        chosen = given if given is not None else min(rows, key=lambda row: (row.bic, row.k)).k
        x, _ = fits[chosen]
        film = _film(x, chosen, beam_from, names)
        offset, _, d, _ = _unpack(x, chosen)
        rms = float(np.sqrt(np.mean((sld_profile(film.as_array(), z - offset)[1][0] - sld) ** 2)))
    finally:
        numba.set_num_threads(threads)
        blas.restore_original_limits()
    result = SlabFit(film=film, k=chosen, chosen_by="BIC" if given is None else "given", criteria=tuple(rows),
                     rms=rms, offset=float(offset), interfaces=offset + np.concatenate(([0.0], np.cumsum(d))),
                     effective_points=n_eff)
    return result if lo_band is None else replace(result, band=(z, lo_band, hi_band))


def _film(x: np.ndarray, k: int, beam_from: str, names: tuple[str, str]) -> Film:
    # rounded to 1e-9 (of 10⁻⁶ Å⁻² or Å, far below anything measurable) so that round-off reads as
    # 0 rather than -1e-16; + 0.0 turns -0.0 into 0.0
    _, rho, d, sigma = (np.round(part, 9) + 0.0 for part in _unpack(x, k))
    layers = [Layer(names[0], float(rho[0]), roughness=float(sigma[0]))]
    layers += [Layer(f"layer {i}", float(rho[i]), thickness=float(d[i - 1]), roughness=float(sigma[i]))
               for i in range(1, k + 1)]
    layers.append(Layer(names[1], float(rho[-1])))
    return Film(layers=tuple(layers), beam_from=beam_from, name=f"{k}-layer slab model of a profile")
