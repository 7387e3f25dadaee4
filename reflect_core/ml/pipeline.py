"""A training job from spec to saved model; the same code runs in a local worker,
in a Modal container and from the command line.

Spec (validated once, here, with messages that name the field)::

    {"kind": "train",
     "dataset":  {"prior": {"film": {...}, "bounds": [...]}, "n": 5000, "seed": 0,
                  "sampler": "latin_hypercube", "qmin", "qmax", "nq", "spacing", "dq",
                  "n_profile": 900, "noise": null | {"counts_at_unity", "background", "scale"} (number or [lo, hi]),
                  "exact": false},                       # every field optional
     "model":    {"arch": "compact_cnn", "layers", "channels", "hidden", "dropout"},
     "training": {"epochs", "batch_size", "lr", "weight_decay", "optimizer",
                  "val_fraction", "test_fraction", "seed", "patience", "checkpoint_every"}}

Run directory: ``data/`` (generated arrays, reused by retry and resume),
``checkpoint.pt`` (while paused or between checkpoints), ``model/`` (the result).

Device: CUDA when available, else the CPU; ``device`` or ``$REFLECT_DEVICE`` overrides
(``reflect_core.ml.device.choose_device``). The checkpoint and the saved model hold CPU
tensors, so a run paused on a GPU resumes on a CPU, and a model trained on a GPU loads
anywhere. What is reproducible on each device: ``reflect_core.ml.training``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from reflect_core.base.job_protocol import NeverInterrupt
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE, generate
from reflect_core.formats.arrays import load_training_arrays
from reflect_core.ml.evaluation import evaluate
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import save_model
from reflect_core.ml.models import parameter_count
from reflect_core.ml.spec import ArraySource, TrainSpec
from reflect_core.ml.training import CHECKPOINT, Trainer
from reflect_core.ml.uncertainty import calibrate


def train_on_arrays(nr: np.ndarray, sld: np.ndarray, spec: TrainSpec, model_dir: Path, reporter,
                    control=NeverInterrupt(), checkpoint: Path | None = None, data_folder: str | None = None,
                    device=None) -> dict:
    """Train, evaluate on the held-out test split and save the model directory (CPU weights)."""
    reporter.phase("preprocessing")
    trainer = Trainer(nr, sld, spec.model, spec.training, device)
    if trainer.device.type != "cpu":
        reporter.log(f"training on {trainer.device} ({torch.cuda.get_device_name(trainer.device)}), bf16 autocast, "
                     f"training data {'on the GPU' if trainer.resident else 'copied per batch'}")
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
    val = trainer.splits["val"]
    pred_val = trainer.normalizer.sld_back(trainer.predict_normalized(val.x).numpy())
    metrics["band"] = calibrate(pred_val, sld[val.index, 1], pred, sld[test.index, 1]).to_dict()
    reporter.phase("saving")
    meta = ModelMeta(
        model=spec.model, training=spec.training, prior=spec.prior, beam_from=spec.beam_from,
        data_folder=data_folder, dataset=spec.dataset.to_dict(), q=np.asarray(trainer.q, float),
        z=np.asarray(trainer.z, float), dq=spec.dataset.dq, normalization=trainer.normalizer, metrics=metrics,
        history=trainer.state["history"], best_epoch=trainer.state["best_epoch"],
        parameters=parameter_count(trainer.model), test_index=test.index.tolist(),
    )
    save_model(model_dir, trainer.model.cpu(), meta)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    # Metrics live in model.json only; the run's result says where the model is and how long it took.
    return {"model": model_dir.name, "epochs_run": trainer.state["epoch"],
            "training_s": round(time.monotonic() - t0, 2)}


def _relative_to_data_dir(folder: Path) -> str | None:
    """Where the training arrays live, as the app finds them again (None: outside the data dir)."""
    try:
        return str(Path(folder).resolve().relative_to(data_dir().resolve()))
    except ValueError:
        return None


def run_job(checked: TrainSpec, run_dir: Path, reporter, control=NeverInterrupt(), device=None) -> dict:
    """Generate (or reuse) the data, train, evaluate, save; returns a JSON-able summary."""
    run_dir = Path(run_dir)
    t0 = time.monotonic()
    if isinstance(checked.dataset, ArraySource):
        folder = checked.dataset.path()
    else:
        folder = generate(checked.dataset, run_dir / "data", reporter, control)
    generation_s = time.monotonic() - t0
    nr, sld = load_training_arrays(folder / NR_FILE, folder / SLD_FILE)
    summary = train_on_arrays(nr, sld, checked, run_dir / "model", reporter, control, run_dir / CHECKPOINT,
                              _relative_to_data_dir(folder), device)
    return {**summary, "generation_s": round(generation_s, 2), "total_s": round(time.monotonic() - t0, 2),
            "n_curves": int(len(nr))}
