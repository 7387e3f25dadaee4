"""Resource limits: a generous local profile (single user on their own machine) and a
tighter shared profile (a deployment with logins). The UI clamps its controls to
these numbers and the server re-checks every request, listing every violation."""

from __future__ import annotations

from dataclasses import dataclass

from reflect_core.base import errors
from reflect_core.ml.spec import ArraySource, TrainSpec

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


LOCAL = Limits("local", curves=100_000, film_layers=20, batch_size=512, epochs=1000, cnn_layers=20, dropout=0.9,
               latent_dim=128, ae_mlp_epochs=500, concurrent_jobs=2, upload_bytes=200 * MB,
               storage_bytes=20_000 * MB)
SHARED = Limits("shared", curves=5_000, film_layers=10, batch_size=64, epochs=50, cnn_layers=12, dropout=0.5,
                latent_dim=32, ae_mlp_epochs=100, concurrent_jobs=1, upload_bytes=50 * MB,
                storage_bytes=2_000 * MB)

LABELS = {"curves": "curves", "film_layers": "film layers", "batch_size": "batch size", "epochs": "epochs",
          "cnn_layers": "CNN layers", "dropout": "dropout", "concurrent_jobs": "concurrent jobs per user",
          "upload_bytes": "upload size (bytes)", "storage_bytes": "storage per user (bytes)"}


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


def spec_violations(spec: TrainSpec, limits: Limits, running_jobs: int = 0) -> list[str]:
    """Every limit a validated training spec breaks (an empty list when it fits). The
    spec object is the one the pipeline runs, so no field can slip past under another key."""
    dataset = spec.dataset
    uploaded = isinstance(dataset, ArraySource)
    checks = [
        ("curves", dataset.n),
        ("film_layers", 0 if uploaded else len(dataset.prior.film.layers)),
        ("batch_size", spec.training.batch_size),
        ("epochs", spec.training.epochs),
        ("cnn_layers", spec.model.layers),
        ("dropout", spec.model.dropout),
    ]
    found = [f"{LABELS[name]} {value:,} > {getattr(limits, name):,}" for name, value in checks
             if value > getattr(limits, name)]
    if running_jobs >= limits.concurrent_jobs:
        found.append(f"{LABELS['concurrent_jobs']}: {running_jobs} already active, limit {limits.concurrent_jobs}")
    return found


def check_spec(spec: TrainSpec, limits: Limits, running_jobs: int = 0) -> None:
    found = spec_violations(spec, limits, running_jobs)
    if found:
        raise LimitError(found, limits)


def check_upload_size(size: int, limits: Limits, filename: str) -> None:
    if size > limits.upload_bytes:
        raise LimitError([f"{filename}: {size / MB:,.1f} MB > {limits.upload_bytes / MB:,.0f} MB upload limit"],
                         limits)
