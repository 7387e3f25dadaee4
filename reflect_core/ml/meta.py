"""``model.json``: everything needed to use a saved model, and the one record of how it
was trained and how well it does. ``ModelMeta`` alone reads and writes it.

Schema 2 (this module) adds ``schema`` and ``source`` and always has ``beam_from``;
files written before it (no ``schema``) are read through ``_migrate_v1``. The run's
state and the history record point at the model directory; their summaries of the
metrics are derived from this file, never written by hand.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import StorageError, atomic_write_json, read_bounded
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import ModelSettings, TrainSettings, settings_from_dict, train_settings_from_dict
from reflect_core.physics.film import BEAM_SIDES

META = "model.json"
SCHEMA = 2
MAX_META_BYTES = 50_000_000  # a 100,000-point grid and a long history are far below this


class ModelLoadError(InvalidInput):
    """A model directory that cannot be used; the message names the file and the reason."""


def versions() -> dict:
    """The library versions that made a model, for whoever loads it later."""
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "numba", "pyreflect-nr"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return found


@dataclass(frozen=True, eq=False)
class ModelMeta:
    model: ModelSettings
    q: np.ndarray  # Å⁻¹, the only grid the network reads
    z: np.ndarray  # Å, the grid of its profiles
    dq: float  # resolution (FWHM fraction) of its training curves
    normalization: Normalizer
    beam_from: str = "ambient"
    parameters: int | None = None
    source: dict = field(default_factory=lambda: {"kind": "training"})
    training: TrainSettings | None = None  # None for imported models
    dataset: dict | None = None  # the dataset spec it was trained on
    prior: dict | None = None
    data_folder: str | None = None  # its training arrays, relative to the data directory
    metrics: dict | None = None  # test metrics next to the mean-profile baseline
    history: dict | None = None  # {"train": [...], "val": [...]} losses per epoch
    best_epoch: int | None = None
    test_index: list | None = None
    versions: dict = field(default_factory=versions)

    # ---- reading -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw, where: str = META) -> "ModelMeta":
        """The validated metadata; ``ModelLoadError`` names ``where`` and the field."""
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{where} must be a JSON object")
        raw = _migrate_v1(raw) if "schema" not in raw else raw
        if raw.get("schema") != SCHEMA:
            raise ModelLoadError(f"{where}: schema {raw.get('schema')!r} is newer than this app reads ({SCHEMA})")
        try:
            q, z = (np.asarray(raw[key], dtype=float) for key in ("q", "z"))
            meta = cls(
                model=settings_from_dict(raw["model"]), q=q, z=z, dq=float(raw["dq"]),
                normalization=Normalizer.from_dict(raw["normalization"]),
                beam_from=raw.get("beam_from", "ambient"), parameters=raw.get("parameters"),
                source=dict(raw.get("source") or {"kind": "training"}),
                training=train_settings_from_dict(raw["training"]) if raw.get("training") else None,
                dataset=raw.get("dataset"), prior=raw.get("prior"), data_folder=raw.get("data_folder"),
                metrics=raw.get("metrics"), history=raw.get("history"), best_epoch=raw.get("best_epoch"),
                test_index=raw.get("test_index"), versions=dict(raw.get("versions") or {}),
            )
        except KeyError as exc:
            raise ModelLoadError(f"{where} lacks the field {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}: {exc}") from None
        meta.check(where)
        return meta

    @classmethod
    def read(cls, model_dir) -> "ModelMeta":
        path = Path(model_dir) / META
        try:
            raw = read_bounded(path, MAX_META_BYTES)
        except FileNotFoundError:
            raise ModelLoadError(f"{model_dir}: no {META} (not a model directory)") from None
        except OSError as exc:
            raise ModelLoadError(f"{path}: unreadable ({exc.strerror})") from None
        if len(raw) > MAX_META_BYTES:
            raise ModelLoadError(f"{path}: larger than {MAX_META_BYTES:,} bytes")
        try:
            return cls.from_dict(json.loads(raw), str(path))
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(f"{path} is not valid JSON ({exc})") from None

    def check(self, where: str = META) -> None:
        """Grids and statistics a network can use; ``ModelLoadError`` otherwise."""
        for name, grid in (("q", self.q), ("z", self.z)):
            if grid.ndim != 1 or grid.size < 2 or not np.all(np.isfinite(grid)):
                raise ModelLoadError(f"{where}: '{name}' must be a list of at least 2 finite numbers")
        if np.any(self.q <= 0):
            raise ModelLoadError(f"{where}: Q values must be > 0 Å⁻¹")
        if not math.isfinite(self.dq) or not 0 <= self.dq < 0.5:
            raise ModelLoadError(f"{where}: dq must be a FWHM fraction in [0, 0.5), got {self.dq!r}")
        if self.beam_from not in BEAM_SIDES:
            raise ModelLoadError(f"{where}: beam_from must be one of {BEAM_SIDES}, got {self.beam_from!r}")
        n = self.normalization
        values = [getattr(n, f.name) for f in fields(n)]
        if not all(math.isfinite(v) for v in values):
            raise ModelLoadError(f"{where}: normalization values must be finite")
        if n.log_r_max <= n.log_r_min or n.sld_max <= n.sld_min:
            raise ModelLoadError(f"{where}: normalization log_r_max and sld_max must be above their minima")

    # ---- writing -------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "source": self.source, "model": self.model.to_dict(),
            "training": self.training.to_dict() if self.training else None, "prior": self.prior,
            "beam_from": self.beam_from, "data_folder": self.data_folder, "dataset": self.dataset,
            "q": self.q.tolist(), "z": self.z.tolist(), "dq": self.dq, "normalization": self.normalization.to_dict(),
            "metrics": self.metrics, "history": self.history, "best_epoch": self.best_epoch,
            "parameters": self.parameters, "test_index": self.test_index, "versions": self.versions,
        }

    def write(self, model_dir) -> Path:
        path = Path(model_dir) / META
        try:
            atomic_write_json(path, self.to_dict())
        except StorageError as exc:
            raise ModelLoadError(str(exc)) from None
        return path

    # ---- what pages and records show ------------------------------------------------

    def summary(self) -> dict:
        """The few numbers a history record lists (derived from this file, never stored apart)."""
        model = (self.metrics or {}).get("model", {})
        return {"rmse": model.get("rmse"), "baseline_rmse": (self.metrics or {}).get("baseline", {}).get("rmse"),
                "r2": model.get("r2"), "nr_decades": model.get("nr_decades_median"), "parameters": self.parameters}


def _migrate_v1(raw: dict) -> dict:
    """Files written before schema 2: a training run's (``history`` present) or a pyreflect
    import's (``source`` present); both lacked ``beam_from`` when the beam came from the ambient."""
    migrated = {**raw, "schema": SCHEMA, "beam_from": raw.get("beam_from", "ambient")}
    migrated.setdefault("source", {"kind": "training"})
    return migrated
