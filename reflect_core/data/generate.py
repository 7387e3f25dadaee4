"""Synthetic training sets: N films from a prior → NR (N,2,L) and SLD (N,2,M) arrays.

Arrays are in pyreflect's format (float32 ``.npy``: NR rows [Q, R], SLD rows
[z, SLD]) and stream to disk chunk by chunk, so memory stays flat whatever N.
Every random draw is fixed by the seed (parameters up front, noise per chunk),
so an interrupted generation resumes to the same bytes.

Labels: the erf SLD profile on one z grid per dataset (z = 0 at the substrate's
top interface). Curves: by default the slab model (Névot–Croce), which is fast
but not exactly the curve of the label profile when interfaces are rough; the
``exact`` mode computes R from the label profile itself (microslabs), about
50× slower. ``pair_consistency`` measures the difference.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.data.prior import SAMPLERS, Prior, PriorError, prior_from_dict
from reflect_core.formats.curves import q_grid
from reflect_core.physics.film import FIELD_UNITS, LAYER_FIELDS, MAX_THICKNESS, MAXIMA, flip_stack, short_repr
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM
from reflect_core.physics.profile import (
    DEFAULT_PROFILE_POINTS,
    PROFILE_MARGIN_MIN,
    PROFILE_MARGIN_SIGMAS,
    microslab_stacks,
    sld_profile,
)
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.simulate import (
    MAX_DQ,
    MAX_Q,
    MAX_Q_POINTS,
    PYREFLECT_DQ,
    PYREFLECT_NQ,
    PYREFLECT_QMAX,
    PYREFLECT_QMIN,
    check_smearing,
    smearing_size,
)

NR_FILE, SLD_FILE, PARAMS_FILE, CONFIG_FILE, STATUS_FILE = (
    "nr_train.npy", "sld_train.npy", "params.npy", "dataset.json", "generation.json")
CHUNK = 500
MAX_PROFILE_POINTS = 5_000  # z points of a label: 0.1 Å steps through a 500 Å film; networks predict far fewer
MAX_COUNTS = 1e12  # neutrons at R = 1: beyond any measurement (a day on a reactor beam is ~1e9)
FINE_VALUES_PER_CALL = 4_000_000  # films × fine Q nodes per reflectivity call (32 MB per array)


class DatasetError(InvalidInput):
    """A dataset configuration that cannot be generated; the message names the field."""


MAX_SCALE_ERROR = 0.5  # a curve's normalisation off by up to ±50 %: far past any real one


@dataclass(frozen=True)
class Noise:
    """A measurement's imperfections on each synthetic curve: R → Poisson((s·R + b)·N₀)/N₀, with
    ``counts_at_unity`` N₀ neutrons where R = 1 (a point of reflectivity R carries √(R·N₀)/N₀ error),
    a flat ``background`` b (R units) and a ``scale`` s (a misnormalised curve). Each is a (lo, hi)
    range drawn anew for every curve, so a network learns every level in it: N₀ and a positive
    background log-uniformly (they span decades), the scale uniformly; lo == hi is one value for all
    (and draws no random numbers: data sets from before the ranges are generated as they were)."""

    counts_at_unity: tuple[float, float] = (1e7, 1e7)
    background: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)

    def to_dict(self) -> dict:
        """A fixed value as a number, a range as [lo, hi]; no scale entry for an exact one."""
        shown = {name: lo if lo == hi else [lo, hi] for name, (lo, hi) in
                 (("counts_at_unity", self.counts_at_unity), ("background", self.background), ("scale", self.scale))}
        if self.scale == (1.0, 1.0):
            del shown["scale"]
        return shown

    def apply(self, r: np.ndarray, rng) -> np.ndarray:
        """Noisy copies of the curves ``r`` (n, L)."""
        n = len(r)
        counts = _draw(rng, self.counts_at_unity, n, log=True)
        expected = (_draw(rng, self.scale, n, log=False) * r + _draw(rng, self.background, n, log=True)) * counts
        return rng.poisson(expected) / counts


def _draw(rng, bounds: tuple[float, float], n: int, log: bool) -> np.ndarray | float:
    """One value per curve in [lo, hi] (log-uniform when asked and lo > 0), or the fixed value."""
    lo, hi = bounds
    if lo == hi:
        return lo
    values = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if log and lo > 0 else rng.uniform(lo, hi, n)
    return values[:, None]


def _noise_range(noise: dict, name: str, default: float, low: float, high: float,
                 positive: bool = True) -> tuple[float, float]:
    """A noise setting as a number or [lo, hi], within its physical bounds."""
    value = noise.get(name, default)
    pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair):
        raise DatasetError(f"dataset.noise.{name}: expected a number or [lo, hi], got {short_repr(value)}")
    lo, hi = (float(v) for v in pair)
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi <= high) or (positive and lo <= 0):
        raise DatasetError(f"dataset.noise.{name}: needs {low:g} {'<' if positive else '≤'} lo ≤ hi ≤ {high:g}, "
                           f"got {short_repr(value)}")
    return lo, hi


def noise_from_dict(noise) -> Noise:
    if not isinstance(noise, dict) or set(noise) - {"counts_at_unity", "background", "scale"}:
        raise DatasetError(f"dataset.noise: expected {{counts_at_unity, background[, scale]}}, got {short_repr(noise)}")
    return Noise(counts_at_unity=_noise_range(noise, "counts_at_unity", 1e7, 0.0, MAX_COUNTS),
                 background=_noise_range(noise, "background", 0.0, 0.0, 1.0, positive=False),
                 scale=_noise_range(noise, "scale", 1.0, 1 - MAX_SCALE_ERROR, 1 + MAX_SCALE_ERROR))


@dataclass(frozen=True)
class DatasetConfig:
    prior: Prior
    n: int = 5000
    seed: int = 0
    sampler: str = "latin_hypercube"
    qmin: float = PYREFLECT_QMIN
    qmax: float = PYREFLECT_QMAX
    nq: int = PYREFLECT_NQ
    spacing: str = "log"
    dq: float = PYREFLECT_DQ
    n_profile: int = DEFAULT_PROFILE_POINTS
    noise: Noise | None = None
    exact: bool = False

    @property
    def q(self) -> np.ndarray:
        return q_grid(self.qmin, self.qmax, self.nq, self.spacing)

    @property
    def z(self) -> np.ndarray:
        """One z grid for the whole dataset, covering the thickest, roughest film."""
        extremes = self.prior.extreme_stacks()
        rough = extremes[:, :, 3].max(axis=0)
        total = extremes[:, 1:-1, 2].max(axis=0).sum()
        low = max(PROFILE_MARGIN_SIGMAS * rough[0], PROFILE_MARGIN_MIN)
        high = max(PROFILE_MARGIN_SIGMAS * rough[-2], PROFILE_MARGIN_MIN)
        return np.linspace(-low, total + high, self.n_profile)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["prior"] = self.prior.to_dict()
        data["noise"] = None if self.noise is None else self.noise.to_dict()
        return data


def default_dataset_dict() -> dict:
    return {"prior": {"film": DEFAULT_FILM.to_dict(), "bounds": [dict(b) for b in DEFAULT_BOUNDS]}}


def dataset_from_dict(raw: dict, max_curves: int = 1_000_000) -> DatasetConfig:
    if not isinstance(raw, dict):
        raise DatasetError("dataset must be an object")
    if "film" in raw:  # the command line's flat form: film and bounds beside the other settings
        raw = {**{k: v for k, v in raw.items() if k not in ("film", "bounds")},
               "prior": {"film": raw["film"], "bounds": raw.get("bounds", [])}}
    unknown = set(raw) - set(DatasetConfig.__dataclass_fields__)
    if unknown:
        raise DatasetError(f"dataset: unknown fields {sorted(unknown)}")
    try:
        prior = prior_from_dict(raw.get("prior") or default_dataset_dict()["prior"])
    except (PriorError, ValueError, OverflowError) as exc:  # OverflowError: a bound of thousands of digits
        raise DatasetError(f"prior: {exc}") from None
    values = {}
    for name, kind, lo, hi in [("n", int, 2, max_curves), ("seed", int, 0, 2**32 - 1), ("nq", int, 2, MAX_Q_POINTS),
                               ("n_profile", int, 2, MAX_PROFILE_POINTS), ("qmin", float, 1e-6, MAX_Q),
                               ("qmax", float, 1e-6, MAX_Q), ("dq", float, 0, MAX_DQ)]:
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                expected = "an integer" if kind is int else "a number"
                raise DatasetError(f"dataset.{name}: expected {expected}, got {short_repr(value)}")
            # An int is compared as it is: float() of a huge one would overflow.
            if not (isinstance(value, int) or math.isfinite(value)) or not lo <= value <= hi:
                raise DatasetError(f"dataset.{name}: must be between {lo:g} and {hi:g}, got {short_repr(value)}")
            values[name] = kind(value)
    for name, choices in (("sampler", SAMPLERS), ("spacing", ("log", "linear"))):
        if name in raw:
            if raw[name] not in choices:
                raise DatasetError(f"dataset.{name}: must be one of {choices}, got {raw[name]!r}")
            values[name] = raw[name]
    if raw.get("noise"):
        values["noise"] = noise_from_dict(raw["noise"])
    values["exact"] = bool(raw.get("exact", False))
    config = DatasetConfig(prior=prior, **values)
    if config.qmin >= config.qmax:
        raise DatasetError(f"dataset.qmin ({config.qmin:g}) must be below dataset.qmax ({config.qmax:g})")
    if not prior.free:
        raise DatasetError("prior: every range is fixed (lo = hi), so all curves would be identical")
    _check_extremes(config)
    return config


def _check_extremes(config: DatasetConfig) -> None:
    """The prior's widest films within the physical bounds (physics.film), and the resolution's
    work for the thickest of them (or, in exact mode, for the whole z grid) affordable."""
    extremes = config.prior.extreme_stacks()
    for column, field in enumerate(LAYER_FIELDS):
        worst = float(np.abs(extremes[:, :, column]).max())
        if worst > MAXIMA[field]:
            raise DatasetError(f"prior: {field} reaches {worst:g} {FIELD_UNITS[field]}; the physical bound "
                               f"is {MAXIMA[field]:g}")
    thickest = float(extremes[:, 1:-1, 2].sum(axis=1).max()) if extremes.shape[1] > 2 else 0.0
    if thickest > MAX_THICKNESS:
        raise DatasetError(f"prior: the thickest film is {thickest:g} Å in all; the bound is "
                           f"{MAX_THICKNESS:g} Å (10 µm)")
    z = config.z
    try:
        check_smearing(config.q, config.dq, float(z[-1] - z[0]) if config.exact else thickest, "dataset: ")
    except InvalidInput as exc:
        raise DatasetError(str(exc)) from None


def beam_frame(config: DatasetConfig, stacks: np.ndarray) -> np.ndarray:
    return flip_stack(stacks) if config.prior.film.beam_from == "substrate" else stacks


def _reflectivity(config: DatasetConfig, stacks: np.ndarray) -> np.ndarray:
    """``reflectivity`` in slices of films, so that the fine Q grid of thick films on long grids
    never holds more than FINE_VALUES_PER_CALL values at once (results are the same)."""
    thickest = float(stacks[:, 1:-1, 2].sum(axis=1).max()) if stacks.shape[1] > 2 else 0.0
    nodes = smearing_size(config.q, config.dq, thickest)[1]
    step = max(1, FINE_VALUES_PER_CALL // max(nodes, 1))
    return np.concatenate([reflectivity(stacks[i:i + step], config.q, config.dq)
                           for i in range(0, len(stacks), step)]) if len(stacks) else np.empty((0, config.nq))


def simulate_chunk(config: DatasetConfig, stacks: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """(R (n, L), SLD (n, M)) for film-order stacks."""
    z = config.z
    _, sld = sld_profile(stacks, z)
    if config.exact:
        _, isld = sld_profile(stacks, z, absorption=True)
        r = _reflectivity(config, beam_frame(config, microslab_stacks(z, sld, isld)))
    else:
        r = _reflectivity(config, beam_frame(config, stacks))
    if config.noise is not None:
        r = config.noise.apply(r, rng)
    return r, sld


def _open_npy(path: Path, shape: tuple, resume_at: int) -> "np.io.BinaryIO":
    """A float32 .npy with its final header, positioned after ``resume_at`` rows."""
    if resume_at and path.exists():
        handle = open(path, "r+b")
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        row_bytes = int(np.prod(shape[1:])) * 4
        handle.seek(handle.tell() + resume_at * row_bytes)
        handle.truncate()
        return handle
    handle = open(path, "wb")
    np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return handle


def _read_status(out_dir: Path, config: DatasetConfig) -> int:
    """Rows already written by an earlier, interrupted run of the same config."""
    try:
        status = json.loads((out_dir / STATUS_FILE).read_text())
        same = json.loads((out_dir / CONFIG_FILE).read_text()) == json.loads(json.dumps(config.to_dict()))
    except (OSError, ValueError):
        return 0
    return int(status.get("done", 0)) if same else 0


def is_complete(out_dir: Path, config: DatasetConfig) -> bool:
    try:
        status = json.loads((Path(out_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(status.get("complete")) and _read_status(Path(out_dir), config) == config.n


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def generate(config: DatasetConfig, out_dir, reporter=None, control=None, chunk: int = CHUNK) -> Path:
    """Write the dataset to ``out_dir``; resumes an interrupted run of the same config.

    ``control.requested()`` is checked between chunks; on "pause" or "stop" the
    rows written so far are kept and ``job_protocol.Paused``/``Stopped`` raised.
    """
    from reflect_core.base.job_protocol import Paused, Stopped

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_complete(out_dir, config):
        return out_dir
    done = _read_status(out_dir, config)
    _write_json(out_dir / CONFIG_FILE, config.to_dict())
    params = config.prior.sample(config.n, config.seed, config.sampler)  # (N, L, 4): ~N·L·32 bytes
    q, z = config.q, config.z
    n, L, M = config.n, q.size, z.size
    handles = [_open_npy(out_dir / NR_FILE, (n, 2, L), done), _open_npy(out_dir / SLD_FILE, (n, 2, M), done)]
    try:
        for start in range(done, n, chunk):
            stop = min(start + chunk, n)
            r, sld = simulate_chunk(config, params[start:stop], np.random.default_rng([config.seed, start]))
            nr_rows = np.empty((stop - start, 2, L), np.float32)
            nr_rows[:, 0], nr_rows[:, 1] = q, r
            sld_rows = np.empty((stop - start, 2, M), np.float32)
            sld_rows[:, 0], sld_rows[:, 1] = z, sld
            handles[0].write(nr_rows.tobytes())
            handles[1].write(sld_rows.tobytes())
            for handle in handles:
                handle.flush()
            _write_json(out_dir / STATUS_FILE, {"done": stop, "complete": stop == n})
            if reporter is not None:
                reporter.phase("generating", stop, n)
            request = control.requested() if control is not None and stop < n else None
            if request == "pause":
                raise Paused(f"generation paused at {stop}/{n} curves")
            if request == "stop":
                raise Stopped(f"generation stopped at {stop}/{n} curves")
    finally:
        for handle in handles:
            handle.close()
    np.save(out_dir / PARAMS_FILE, params.astype(np.float32))
    return out_dir


def pair_consistency(config: DatasetConfig, n: int = 200) -> dict:
    """How far each curve is from the curve its label profile produces.

    Recomputes R from the stored label (microslabs of the sampled profile) and
    compares with the curve: median and p95 relative difference over all points.
    """
    params = config.prior.sample(n, config.seed, config.sampler)
    r, sld = simulate_chunk(replace(config, noise=None), params, None)
    from_label = reflectivity(beam_frame(config, microslab_stacks(config.z, sld)), config.q, config.dq)
    rel = np.abs(r / from_label - 1)
    return {"median": float(np.median(rel)), "p95": float(np.percentile(rel, 95)), "max": float(rel.max())}
