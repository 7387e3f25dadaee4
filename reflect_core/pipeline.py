"""A training job from spec to saved model; the same code runs in a local worker,
in a Modal container and from the command line.

Spec (validated once, here, with messages that name the field)::

    {"kind": "train",
     "dataset":  {"prior": {"film": {...}, "bounds": [...]}, "n": 5000, "seed": 0,
                  "sampler": "latin_hypercube", "qmin", "qmax", "nq", "spacing", "dq",
                  "n_profile": 900, "noise": null | {"counts_at_unity", "background"},
                  "exact": false},                       # every field optional
     "model":    {"arch": "compact_cnn", "layers", "channels", "hidden", "dropout"},
     "training": {"epochs", "batch_size", "lr", "weight_decay", "optimizer",
                  "val_fraction", "test_fraction", "seed", "patience", "checkpoint_every"}}

Run directory: ``data/`` (generated arrays, reused by retry and resume),
``checkpoint.pt`` (while paused or between checkpoints), ``model/`` (the result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arrays import load_training_arrays
from .evaluation import evaluate
from .generate import NR_FILE, SLD_FILE, DatasetConfig, DatasetError, dataset_from_dict, generate
from .job_protocol import NeverInterrupt
from .model_store import save_model
from .models import ModelError, ModelSettings, parameter_count, settings_from_dict
from .prior import PriorError
from .simulate import PYREFLECT_DQ
from .storage import data_dir
from .training import CHECKPOINT, Trainer, TrainingError, TrainSettings, train_settings_from_dict


class SpecError(ValueError):
    """A job spec that cannot run; the message names the field."""


@dataclass(frozen=True)
class ArraySource:
    """Training arrays the user uploaded (a folder under the data directory holding
    nr_train.npy and sld_train.npy) instead of generated ones."""

    folder: str  # relative to data_dir()
    dq: float  # the curves' resolution (FWHM fraction), used when NR is recomputed from profiles
    beam_from: str = "ambient"

    def path(self) -> Path:
        root = data_dir().resolve()
        path = (root / self.folder).resolve()
        if not path.is_relative_to(root / "uploads"):
            raise SpecError(f"dataset.arrays: {self.folder!r} is not an upload folder")
        return path

    def to_dict(self) -> dict:
        return {"arrays": self.folder, "dq": self.dq, "beam_from": self.beam_from}


def _array_source(raw: dict) -> ArraySource:
    unknown = set(raw) - {"arrays", "dq", "beam_from"}
    if unknown:
        raise SpecError(f"dataset: with 'arrays', only dq and beam_from may be given (got {sorted(unknown)})")
    dq = raw.get("dq", PYREFLECT_DQ)
    if isinstance(dq, bool) or not isinstance(dq, (int, float)) or not 0 <= dq < 0.5:
        raise SpecError(f"dataset.dq: must be a FWHM fraction in [0, 0.5), got {dq!r}")
    if raw.get("beam_from", "ambient") not in ("ambient", "substrate"):
        raise SpecError("dataset.beam_from: must be 'ambient' or 'substrate'")
    source = ArraySource(str(raw["arrays"]), float(dq), raw.get("beam_from", "ambient"))
    source.path()
    return source


@dataclass(frozen=True)
class TrainSpec:
    dataset: DatasetConfig | ArraySource
    model: ModelSettings
    training: TrainSettings

    @property
    def beam_from(self) -> str:
        d = self.dataset
        return d.beam_from if isinstance(d, ArraySource) else d.prior.film.beam_from

    @property
    def prior(self) -> dict | None:
        return None if isinstance(self.dataset, ArraySource) else self.dataset.prior.to_dict()

    def to_dict(self) -> dict:
        return {"kind": "train", "dataset": self.dataset.to_dict(), "model": self.model.to_dict(),
                "training": self.training.to_dict()}


def validate_spec(spec: dict) -> TrainSpec:
    if not isinstance(spec, dict):
        raise SpecError("a job spec must be an object")
    if spec.get("kind", "train") != "train":
        raise SpecError(f"kind: only 'train' jobs exist, got {spec.get('kind')!r}")
    unknown = set(spec) - {"kind", "dataset", "model", "training"}
    if unknown:
        raise SpecError(f"unknown fields {sorted(unknown)}")
    raw_dataset = spec.get("dataset") or {}
    try:
        dataset = _array_source(raw_dataset) if "arrays" in raw_dataset else dataset_from_dict(raw_dataset)
        return TrainSpec(dataset, settings_from_dict(spec.get("model")), train_settings_from_dict(spec.get("training")))
    except (DatasetError, PriorError, ModelError, TrainingError) as exc:
        raise SpecError(str(exc)) from None


def train_on_arrays(nr: np.ndarray, sld: np.ndarray, spec: TrainSpec, model_dir: Path, reporter,
                    control=NeverInterrupt(), checkpoint: Path | None = None, data_folder: str | None = None) -> dict:
    """Train, evaluate on the held-out test split and save the model directory."""
    reporter.phase("preprocessing")
    trainer = Trainer(nr, sld, spec.model, spec.training)
    if checkpoint is not None and checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
        reporter.log(f"resumed from checkpoint at epoch {trainer.state['epoch']}, batch {trainer.state['batch']}")
    t0 = time.monotonic()
    trainer.fit(reporter, control, checkpoint)
    reporter.phase("evaluating")
    test = trainer.splits["test"]
    nmse = float(trainer.loss(trainer.predict_normalized(test.x), test.y))
    pred = trainer.normalizer.sld_back(trainer.predict_normalized(test.x).numpy())
    train_mean = sld[trainer.splits["train"].index, 1].mean(axis=0)
    metrics = evaluate(pred, sld[test.index, 1], train_mean, nmse, nr[test.index, 1], trainer.q, trainer.z,
                       spec.dataset.dq, spec.beam_from)
    reporter.phase("saving")
    meta = {
        "model": spec.model.to_dict(), "training": spec.training.to_dict(), "prior": spec.prior,
        "beam_from": spec.beam_from, "data_folder": data_folder,
        "dataset": spec.dataset.to_dict(), "q": trainer.q.tolist(), "z": trainer.z.tolist(),
        "dq": spec.dataset.dq, "normalization": trainer.normalizer.to_dict(), "metrics": metrics,
        "history": trainer.state["history"], "best_epoch": trainer.state["best_epoch"],
        "parameters": parameter_count(trainer.model), "test_index": test.index.tolist(),
    }
    save_model(model_dir, trainer.model, meta)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return {"metrics": metrics, "parameters": meta["parameters"], "best_epoch": meta["best_epoch"],
            "epochs_run": trainer.state["epoch"], "training_s": round(time.monotonic() - t0, 2)}


def _relative_to_data_dir(folder: Path) -> str | None:
    """Where the training arrays live, as the app finds them again (None: outside the data dir)."""
    try:
        return str(Path(folder).resolve().relative_to(data_dir().resolve()))
    except ValueError:
        return None


def run_job(spec: dict, run_dir: Path, reporter, control=NeverInterrupt()) -> dict:
    """Generate (or reuse) the data, train, evaluate, save; returns a JSON-able summary."""
    checked = validate_spec(spec)
    run_dir = Path(run_dir)
    t0 = time.monotonic()
    if isinstance(checked.dataset, ArraySource):
        folder = checked.dataset.path()
    else:
        folder = generate(checked.dataset, run_dir / "data", reporter, control)
    generation_s = time.monotonic() - t0
    nr, sld = load_training_arrays(folder / NR_FILE, folder / SLD_FILE)
    summary = train_on_arrays(nr, sld, checked, run_dir / "model", reporter, control, run_dir / CHECKPOINT,
                              _relative_to_data_dir(folder))
    return {**summary, "generation_s": round(generation_s, 2), "total_s": round(time.monotonic() - t0, 2),
            "n_curves": int(len(nr))}
