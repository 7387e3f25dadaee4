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

from .evaluation import evaluate
from .generate import NR_FILE, SLD_FILE, DatasetConfig, DatasetError, dataset_from_dict, generate
from .job_protocol import NeverInterrupt
from .model_store import save_model
from .models import ModelError, ModelSettings, parameter_count, settings_from_dict
from .prior import PriorError
from .training import CHECKPOINT, Trainer, TrainingError, TrainSettings, train_settings_from_dict


class SpecError(ValueError):
    """A job spec that cannot run; the message names the field."""


@dataclass(frozen=True)
class TrainSpec:
    dataset: DatasetConfig
    model: ModelSettings
    training: TrainSettings

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
    try:
        return TrainSpec(dataset_from_dict(spec.get("dataset") or {}), settings_from_dict(spec.get("model")),
                         train_settings_from_dict(spec.get("training")))
    except (DatasetError, PriorError, ModelError, TrainingError) as exc:
        raise SpecError(str(exc)) from None


def train_on_arrays(nr: np.ndarray, sld: np.ndarray, spec: TrainSpec, model_dir: Path, reporter,
                    control=NeverInterrupt(), checkpoint: Path | None = None) -> dict:
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
                       spec.dataset.dq, spec.dataset.prior.film.beam_from)
    reporter.phase("saving")
    meta = {
        "model": spec.model.to_dict(), "training": spec.training.to_dict(), "prior": spec.dataset.prior.to_dict(),
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


def run_job(spec: dict, run_dir: Path, reporter, control=NeverInterrupt()) -> dict:
    """Generate (or reuse) the data, train, evaluate, save; returns a JSON-able summary."""
    checked = validate_spec(spec)
    run_dir = Path(run_dir)
    t0 = time.monotonic()
    data_dir = generate(checked.dataset, run_dir / "data", reporter, control)
    generation_s = time.monotonic() - t0
    nr = np.load(data_dir / NR_FILE)
    sld = np.load(data_dir / SLD_FILE)
    summary = train_on_arrays(nr, sld, checked, run_dir / "model", reporter, control, run_dir / CHECKPOINT)
    return {**summary, "generation_s": round(generation_s, 2), "total_s": round(time.monotonic() - t0, 2),
            "n_curves": checked.dataset.n}
