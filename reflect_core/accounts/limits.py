"""Resource limits: a generous local profile (single user on their own machine) and a
tighter shared profile (a deployment with logins). The UI clamps its controls to
these numbers and the server re-checks every request, listing every violation: the job
store checks a spec and the owner's active jobs at once, under its lock, at submit,
resume and retry (``jobs.submit(..., limits=...)``). A deployment may add its machine's cap on local
training (``with_machine``: Community Cloud's, for every user, admins too; see ``machine``).

Below the profiles sit the physical bounds every input has anyway (``physics.film``,
``physics.simulate``, ``data.generate``, ``ml.settings``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from reflect_core.accounts.machine import MachineCap, compute_violation, training_cpu_seconds
from reflect_core.base import errors
from reflect_core.ml.settings import parameter_count_for
from reflect_core.ml.spec import GPU_TIERS, ArraySource, TrainSpec
from reflect_core.physics.film import Film

MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    profile: str
    curves: int
    film_layers: int
    batch_size: int
    epochs: int
    cnn_layers: int
    dropout: float
    latent_dim: int
    ae_mlp_epochs: int
    concurrent_jobs: int
    upload_bytes: int
    storage_bytes: int  # everything a user keeps: uploads, models, runs, analyses
    q_points: int  # per curve
    profile_points: int  # z points per SLD label
    channels: int  # of the compact CNN's first block
    hidden: int  # its dense width
    parameters: int  # of the network, counted from the settings (ml.settings.parameter_count_for)
    dataset_bytes: int  # the float32 arrays: curves × 2 × (Q points + z points) × 4
    exact_curves: int  # curves generated in exact mode, each ~50× the work of a slab-model curve
    gpu_tiers: tuple[str, ...] = GPU_TIERS  # Modal GPU tiers the user may run on (they cost money)
    machine: MachineCap | None = None  # this machine's cap on local runs (the deployment's, not the profile's)


# Shared: a deployment where 0.7-2.7 GB of memory and a core or two serve every visitor. 20 M
# parameters train in ~320 MB (weights, gradients, two Adam moments); pyreflect's 155 M CNN needs
# the local profile. 100 MB of arrays (5,000 default curves: 48 MB) load in memory for training.
# 500 exact curves cost about what 25,000 slab-model curves do. Local: the physical bounds for the
# grids and widths; 200 M parameters admit pyreflect's CNN; 4 GB of arrays in memory.
LOCAL = Limits("local", curves=100_000, film_layers=20, batch_size=512, epochs=1000, cnn_layers=20, dropout=0.9,
               latent_dim=128, ae_mlp_epochs=500, concurrent_jobs=2, upload_bytes=200 * MB,
               storage_bytes=20_000 * MB, q_points=20_000, profile_points=5_000, channels=512, hidden=8192,
               parameters=200_000_000, dataset_bytes=4_000 * MB, exact_curves=20_000)
SHARED = Limits("shared", curves=5_000, film_layers=10, batch_size=64, epochs=50, cnn_layers=12, dropout=0.5,
                latent_dim=32, ae_mlp_epochs=100, concurrent_jobs=1, upload_bytes=50 * MB,
                storage_bytes=2_000 * MB, q_points=2_000, profile_points=2_000, channels=128, hidden=2048,
                parameters=20_000_000, dataset_bytes=100 * MB, exact_curves=500, gpu_tiers=("T4", "L4"))

LABELS = {"curves": "curves", "film_layers": "film layers", "batch_size": "batch size", "epochs": "epochs",
          "cnn_layers": "CNN layers", "dropout": "dropout", "concurrent_jobs": "concurrent jobs per user",
          "upload_bytes": "upload size (bytes)", "storage_bytes": "storage per user (bytes)",
          "q_points": "Q points", "profile_points": "profile points", "channels": "channels",
          "hidden": "dense width", "parameters": "network parameters", "dataset_bytes": "dataset size (bytes)",
          "exact_curves": "exact-mode curves"}


# The sizes that fill a capped machine's memory or its generation time: a local run there keeps
# within the shared profile's (which fit Cloud's box), whoever asks. Curves, epochs and CNN layers
# count in the compute estimate instead; dropout costs nothing.
BOX_SIZES = frozenset({"film_layers", "batch_size", "q_points", "profile_points", "channels", "hidden",
                       "parameters", "dataset_bytes", "exact_curves"})


class LimitError(errors.LimitError):
    """A request over one or more limits; the message lists every one."""

    def __init__(self, violations: list[str], limits: Limits):
        super().__init__(f"over the {limits.profile} limits: " + "; ".join(violations))
        self.violations = violations


def limits_for(user_name: str, role: str, login_enabled: bool, allowlist=()) -> Limits:
    """Single-user mode, admins and allow-listed users get the local profile."""
    if not login_enabled or role == "admin" or user_name in set(allowlist):
        return LOCAL
    return SHARED


def with_machine(limits: Limits, cap: MachineCap) -> Limits:
    """``limits`` plus this machine's cap on local training (it applies whatever the profile)."""
    return replace(limits, machine=cap)


def _sizes(spec: TrainSpec, owner: str | None) -> list[tuple[str, int | float]]:
    """(limit name, the spec's value) for every size limit. Uploaded arrays are measured from
    their stored headers, in ``owner``'s folder only."""
    dataset = spec.dataset
    uploaded = isinstance(dataset, ArraySource)
    n, n_q, n_z = dataset.shape(owner) if uploaded else (dataset.n, dataset.nq, dataset.n_profile)
    compact = spec.model.arch == "compact_cnn"
    return [
        ("curves", n),
        ("film_layers", 0 if uploaded else len(dataset.prior.film.layers)),
        ("batch_size", spec.training.batch_size),
        ("epochs", spec.training.epochs),
        ("cnn_layers", spec.model.layers),
        ("dropout", spec.model.dropout),
        ("q_points", n_q),
        ("profile_points", n_z),
        ("channels", spec.model.channels if compact else 0),  # pyreflect's CNN has its own widths
        ("hidden", spec.model.hidden if compact else 0),
        ("parameters", parameter_count_for(spec.model, n_q, n_z)),
        ("dataset_bytes", n * 2 * (n_q + n_z) * 4),
        ("exact_curves", n if not uploaded and dataset.exact else 0),
    ]


def _over(value, limit) -> str:
    return f"{value:,} > {limit:,}"


def machine_violations(spec: TrainSpec, limits: Limits, owner: str | None = None, sizes=None) -> list[str]:
    """What a local run breaks of this machine's cap (nothing without a cap, or on another backend):
    the shared profile's ``BOX_SIZES`` where the user's own profile allows more (a shared user's
    are reported once, as theirs), and the estimated training compute (``machine``)."""
    cap = limits.machine
    if cap is None or spec.backend != "local":
        return []
    sizes = _sizes(spec, owner) if sizes is None else sizes
    found = [f"{LABELS[name]} {_over(value, getattr(SHARED, name))} (local training on {cap.where})"
             for name, value in sizes if name in BOX_SIZES and getattr(SHARED, name) < value <= getattr(limits, name)]
    return found + [v for v in [compute_violation(local_cpu_seconds(spec, owner, sizes), cap)] if v]


def local_cpu_seconds(spec: TrainSpec, owner: str | None = None, sizes=None) -> float:
    """The estimated training compute that the machine's cap compares (``machine``)."""
    value = dict(_sizes(spec, owner) if sizes is None else sizes)
    return training_cpu_seconds(spec, value["curves"], value["q_points"], value["profile_points"])


def spec_violations(spec: TrainSpec, limits: Limits, running_jobs: int = 0, owner: str | None = None) -> list[str]:
    """Every limit a validated training spec breaks (an empty list when it fits). The
    spec object is the one the pipeline runs, so no field can slip past under another key."""
    sizes = _sizes(spec, owner)
    found = [f"{LABELS[name]} {_over(value, getattr(limits, name))}" for name, value in sizes
             if value > getattr(limits, name)]
    if spec.backend == "modal" and (spec.gpu or "T4") not in limits.gpu_tiers:
        found.append(f"GPU tier {spec.gpu or 'T4'} not allowed (allowed: {', '.join(limits.gpu_tiers) or 'none'})")
    if running_jobs >= limits.concurrent_jobs:
        found.append(f"{LABELS['concurrent_jobs']}: {running_jobs} already active, limit {limits.concurrent_jobs}")
    return found + machine_violations(spec, limits, owner, sizes)


def check_spec(spec: TrainSpec, limits: Limits, running_jobs: int = 0, owner: str | None = None) -> None:
    found = spec_violations(spec, limits, running_jobs, owner)
    if found:
        raise LimitError(found, limits)


def check_film(film: Film, limits: Limits) -> None:
    """A film within the profile's layer limit (the explorer, film uploads, training priors)."""
    if len(film.layers) > limits.film_layers:
        raise LimitError([f"{LABELS['film_layers']} {len(film.layers):,} > {limits.film_layers:,}"], limits)


def check_upload_size(size: int, limits: Limits, filename: str) -> None:
    if size > limits.upload_bytes:
        raise LimitError([f"{filename}: {size / MB:,.1f} MB > {limits.upload_bytes / MB:,.0f} MB upload limit"],
                         limits)
