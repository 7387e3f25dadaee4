"""``model.json``: everything needed to use a saved model, and the one record of how it
was trained and how well it does. ``ModelMeta`` alone reads and writes it.

Schema 2 (this module) adds ``schema`` and ``source`` and always has ``beam_from``;
files written before it (no ``schema``) are read through ``_migrate_v1``. The run's
state and the history record point at the model directory; their summaries of the
metrics are derived from this file, never written by hand.

``from_dict`` type-checks every field it keeps (a model.json that reads is one every page can
render): numbers are numbers, lists hold what they should, dicts nest at most
``MAX_NESTING`` levels, and ``data_folder`` is a relative path without '..'.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.json_depth import json_depth
from reflect_core.base.storage import StorageError, atomic_write_json, read_bounded, shown_path
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import ModelSettings, TrainSettings, settings_from_dict, train_settings_from_dict
from reflect_core.physics.film import BEAM_SIDES

META = "model.json"
SCHEMA = 2
MAX_META_BYTES = 50_000_000  # a 100,000-point grid and a long history are far below this
MAX_GRID_POINTS = 100_000  # of q and z: measured curves have a few thousand, pyreflect's 308 and 900
MAX_NESTING = 64  # of the free-form dicts (prior, dataset, metrics); ours nest 5 levels at most
PLAIN = (str, int, float, bool, type(None))
SCORES = ("rmse", "mae", "r2", "nr_decades_median")  # metrics.model and .baseline: numbers where given


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
            raise ModelLoadError(f"{where}: schema {_short(raw.get('schema'))} is newer than this app reads ({SCHEMA})")
        try:
            meta = cls(
                model=settings_from_dict(_dict(raw, "model", where)), q=_grid(raw, "q", where),
                z=_grid(raw, "z", where), dq=_number(raw, "dq", where),
                normalization=Normalizer(**{key: _number(_dict(raw, "normalization", where), key,
                                                         f"{where}: normalization")
                                            for key in Normalizer.__dataclass_fields__}),
                beam_from=raw.get("beam_from", "ambient"), parameters=_count(raw, "parameters", where),
                source=_plain_dict(raw, "source", where) or {"kind": "training"},
                training=train_settings_from_dict(_dict(raw, "training", where)) if raw.get("training") else None,
                dataset=_free_dict(raw, "dataset", where), prior=_free_dict(raw, "prior", where),
                data_folder=_relative_path(raw, "data_folder", where), metrics=_metrics(raw, where),
                history=_history(raw, where), best_epoch=_count(raw, "best_epoch", where),
                test_index=_index(raw, where), versions=_plain_dict(raw, "versions", where) or {},
            )
        except KeyError as exc:
            raise ModelLoadError(f"{where} lacks the field {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(f"{where}: {_short(exc)}") from None
        meta.check(where)
        return meta

    @classmethod
    def read(cls, model_dir) -> "ModelMeta":
        path = Path(model_dir) / META
        shown = shown_path(path)
        try:
            raw = read_bounded(path, MAX_META_BYTES)
        except FileNotFoundError:
            raise ModelLoadError(f"{shown_path(model_dir)}: no {META} (not a model directory)") from None
        except OSError as exc:
            raise ModelLoadError(f"{shown}: unreadable ({exc.strerror})") from None
        if len(raw) > MAX_META_BYTES:
            raise ModelLoadError(f"{shown}: larger than {MAX_META_BYTES:,} bytes")
        try:
            parsed = json.loads(raw)
        except RecursionError:
            raise ModelLoadError(f"{shown} is JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{shown} is not valid JSON ({_short(exc)})") from None
        return cls.from_dict(parsed, shown)

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
            raise ModelLoadError(f"{where}: beam_from must be one of {BEAM_SIDES}, got {_short(self.beam_from)}")
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


# ---- the fields, each checked for what readers do with it ----------------------------------------------------------


def _short(value) -> str:
    """A value or an exception in at most 80 characters (a 5000-digit number is not echoed)."""
    try:
        text = str(value) if isinstance(value, BaseException) else repr(value)
    except ValueError:  # an integer past Python's digit limit
        return "a number of thousands of digits"
    return text if len(text) <= 80 else f"{text[:70]}… ({len(text):,} characters)"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(raw: dict, key: str, where: str) -> float:
    value = raw[key]
    if not _is_number(value):
        raise ModelLoadError(f"{where}: '{key}' must be a number, got {_short(value)}")
    return float(value)  # OverflowError for an integer beyond any float: caught by from_dict


def _dict(raw: dict, key: str, where: str) -> dict:
    value = raw[key]
    if not isinstance(value, dict):
        raise ModelLoadError(f"{where}: '{key}' must be an object, got {type(value).__name__}")
    return value


def _grid(raw: dict, key: str, where: str) -> np.ndarray:
    values = raw[key]
    if not isinstance(values, list) or len(values) > MAX_GRID_POINTS or not all(_is_number(v) for v in values):
        raise ModelLoadError(f"{where}: '{key}' must be a list of at most {MAX_GRID_POINTS:,} numbers")
    return np.asarray(values, dtype=float)


def _count(raw: dict, key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63):
        raise ModelLoadError(f"{where}: '{key}' must be a whole number ≥ 0 or null, got {_short(value)}")
    return value


def _free_dict(raw: dict, key: str, where: str) -> dict | None:
    """An object of JSON values, or None."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{where}: '{key}' must be an object or null, got {type(value).__name__}")
    if json_depth(value) > MAX_NESTING:
        raise ModelLoadError(f"{where}: '{key}' nests more than {MAX_NESTING} levels deep")
    return value


def _plain_dict(raw: dict, key: str, where: str) -> dict | None:
    """An object of plain values (text, numbers, true/false, null), or None."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, PLAIN) for k, v in value.items()):
        raise ModelLoadError(f"{where}: '{key}' must be an object of plain values (text, numbers)")
    return dict(value)


def _relative_path(raw: dict, key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    parts = value.replace("\\", "/").split("/") if isinstance(value, str) and value.strip() else []
    if not parts or value.startswith(("/", "\\")) or ".." in parts or ":" in value:
        raise ModelLoadError(f"{where}: '{key}' must be a folder relative to the data directory, or null")
    return value


def _metrics(raw: dict, where: str) -> dict | None:
    metrics = _free_dict(raw, "metrics", where)
    if metrics is None:
        return None
    for part in ("model", "baseline"):
        scores = metrics.get(part)
        if (not isinstance(scores, dict) or not _is_number(scores.get("rmse"))
                or not all(_is_number(scores[key]) for key in SCORES if key in scores)
                or not all(isinstance(v, PLAIN) for v in scores.values())):
            raise ModelLoadError(f"{where}: metrics.{part} must be an object of plain values with the number "
                                 f"'rmse' (and {', '.join(SCORES[1:])}, if given, numbers too)")
    return metrics


def _history(raw: dict, where: str) -> dict | None:
    history = raw.get("history")
    if history is None:
        return None
    if (not isinstance(history, dict) or not {"train", "val"} <= history.keys()
            or not all(isinstance(v, list) and all(_is_number(x) for x in v) for v in history.values())):
        raise ModelLoadError(f"{where}: 'history' must hold lists of numbers, 'train' and 'val' among them")
    return history


def _index(raw: dict, where: str) -> list | None:
    index = raw.get("test_index")
    if index is not None and (not isinstance(index, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63 for i in index)):
        raise ModelLoadError(f"{where}: 'test_index' must be a list of whole numbers ≥ 0, or null")
    return index


def _migrate_v1(raw: dict) -> dict:
    """Files written before schema 2: a training run's (``history`` present) or a pyreflect
    import's (``source`` present); both lacked ``beam_from`` when the beam came from the ambient."""
    migrated = {**raw, "schema": SCHEMA, "beam_from": raw.get("beam_from", "ambient")}
    migrated.setdefault("source", {"kind": "training"})
    return migrated
