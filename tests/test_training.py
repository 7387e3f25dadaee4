"""Training: split hygiene, learning, exact resume, saved models and prediction."""

import json

import numpy as np
import pytest
import torch
from test_generate import SIMPLE

from reflect_core.base.job_protocol import NeverInterrupt, Paused, PrintReporter
from reflect_core.data.generate import dataset_from_dict, generate
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import ModelLoadError, load_model
from reflect_core.ml.pipeline import train_on_arrays
from reflect_core.ml.predict import PredictError, predict
from reflect_core.ml.settings import (
    ModelError,
    ModelSettings,
    TrainingError,
    TrainSettings,
    settings_from_dict,
    train_settings_from_dict,
)
from reflect_core.ml.spec import SpecError, TrainSpec
from reflect_core.ml.training import Trainer, split_indices

SMALL_MODEL = ModelSettings(layers=2, channels=8, hidden=64, dropout=0.1)


class Quiet(PrintReporter):
    def __init__(self):
        super().__init__(stream=open("/dev/null", "w"))


@pytest.fixture(autouse=True)
def on_the_cpu(monkeypatch):
    """The exact-resume checks here hold on the CPU; a GPU machine runs them there too
    (CUDA resume keeps the batches, not the bits: reflect_core/ml/training.py)."""
    monkeypatch.setenv("REFLECT_DEVICE", "cpu")


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    out = generate(dataset_from_dict({**SIMPLE, "n": 800, "seed": 1}), tmp_path_factory.mktemp("data"))
    return np.load(out / "nr_train.npy"), np.load(out / "sld_train.npy")


class PauseAt:
    """A control that asks for a pause at its ``at``-th check (a batch), and never again."""

    def __init__(self, at):
        self.calls, self.at = 0, at

    def requested(self):
        self.calls += 1
        return "pause" if self.calls == self.at else None


def test_split_is_disjoint_seeded_and_test_is_held_out(arrays):
    nr, sld = arrays
    settings = TrainSettings(seed=3)
    train, val, test = split_indices(len(nr), settings)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert len(train) + len(val) + len(test) == len(nr) and len(test) == 80
    assert all(np.array_equal(a, b) for a, b in zip(split_indices(len(nr), settings), (train, val, test)))
    trainer = Trainer(nr, sld, SMALL_MODEL, settings)
    # normalisation statistics come from the training split only
    assert trainer.normalizer.sld_max == pytest.approx(float(sld[train, 1].max()))


def spec_for(epochs, **training):
    return TrainSpec.parse({"dataset": {**SIMPLE, "n": 800, "seed": 1}, "model": SMALL_MODEL.to_dict(),
                          "training": {"epochs": epochs, "batch_size": 32, "patience": 0, "lr": 3e-3, **training}})


def test_tiny_run_beats_the_mean_profile_baseline_and_saves_a_model(arrays, tmp_path):
    nr, sld = arrays
    summary = train_on_arrays(nr, sld, spec_for(25), tmp_path / "model", Quiet())
    assert summary["epochs_run"] == 25 and "metrics" not in summary  # the metrics live in model.json alone
    metrics = ModelMeta.read(tmp_path / "model").metrics
    model, baseline = metrics["model"], metrics["baseline"]
    assert model["rmse"] < 0.5 * baseline["rmse"]
    assert model["r2"] > 0.5 and abs(baseline["r2"]) < 0.05
    assert model["nr_decades_median"] < baseline["nr_decades_median"]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    for key in ("schema", "model", "q", "z", "dq", "normalization", "prior", "metrics", "versions", "history"):
        assert key in meta
    assert len(meta["history"]["train"]) == 25 and len(meta["history"]["val_rmse"]) == 25
    # prediction with the saved model reproduces the evaluation's profiles
    test_index = meta["test_index"]
    pred = predict(tmp_path / "model", nr[test_index])
    rmse = np.sqrt(np.mean((pred[:, 1] - sld[test_index, 1]) ** 2))
    assert rmse == pytest.approx(model["rmse"], rel=1e-4)


def test_pause_mid_epoch_then_resume_equals_uninterrupted(arrays, tmp_path):
    nr, sld = arrays
    settings = TrainSettings(epochs=3, batch_size=32, seed=9, patience=0, checkpoint_every=0)
    straight = Trainer(nr, sld, SMALL_MODEL, settings)
    straight.fit(Quiet(), NeverInterrupt())

    checkpoint = tmp_path / "checkpoint.pt"
    first = Trainer(nr, sld, SMALL_MODEL, settings)
    with pytest.raises(Paused):
        first.fit(Quiet(), PauseAt(30), checkpoint)  # epoch 2 of 3, mid-epoch (20 batches per epoch)
    torch.manual_seed(12345)  # a fresh process would have other RNG state: resume must not depend on it
    resumed = Trainer(nr, sld, SMALL_MODEL, settings)
    resumed.load_checkpoint(checkpoint)
    resumed.fit(Quiet(), NeverInterrupt(), checkpoint)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.state["history"]["train"] == straight.state["history"]["train"]


def test_predict_refuses_another_q_grid_unless_resampled(arrays, tmp_path):
    nr, sld = arrays
    train_on_arrays(nr, sld, spec_for(1), tmp_path / "m", Quiet())
    other = nr[:5].copy()
    other[:, 0] *= 1.01
    with pytest.raises(PredictError, match="not the model's"):
        predict(tmp_path / "m", other)
    wider = np.stack([np.stack([np.geomspace(0.005, 0.3, 400), np.full(400, 1e-3)])] * 2)
    assert predict(tmp_path / "m", wider, resample=True).shape == (2, 2, sld.shape[2])
    narrow = wider.copy()
    narrow[:, 0] = np.geomspace(0.02, 0.1, 400)
    with pytest.raises(PredictError, match="extrapolate"):
        predict(tmp_path / "m", narrow, resample=True)


def test_weights_are_never_unpickled(arrays, tmp_path):
    nr, sld = arrays
    train_on_arrays(nr, sld, spec_for(1), tmp_path / "m", Quiet())
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, tmp_path / "m" / "model.pt")
    with pytest.raises(ModelLoadError, match="model.pt"):
        load_model(tmp_path / "m")
    assert not marker.exists()


@pytest.mark.parametrize("make, message", [
    (lambda: settings_from_dict({"arch": "transformer"}), "model.arch"),
    (lambda: settings_from_dict({"dropout": 1.5}), "model.dropout"),
    (lambda: settings_from_dict({"layers": 0}), "model.layers"),
    (lambda: train_settings_from_dict({"optimizer": "lbfgs"}), "training.optimizer"),
    (lambda: train_settings_from_dict({"lr": -1}), "training.lr"),
    (lambda: train_settings_from_dict({"val_fraction": 0.9}), "training.val_fraction"),
    (lambda: train_settings_from_dict({"epochs": "ten"}), "training.epochs"),
    (lambda: train_settings_from_dict({"val_fraction": "a tenth"}), "training.val_fraction"),
    (lambda: settings_from_dict({"dropout": "some"}), "model.dropout"),
    (lambda: settings_from_dict({"depth": 3}), "unknown settings"),
    (lambda: TrainSpec.parse({"kind": "fit"}), "kind"),
])
def test_bad_settings_name_the_field(make, message):
    with pytest.raises((ModelError, TrainingError, SpecError), match=message):
        make()


def test_optimizers_all_train(arrays):
    nr, sld = arrays
    for name in ("adam", "adamw", "sgd"):
        trainer = Trainer(nr[:200], sld[:200], SMALL_MODEL, TrainSettings(epochs=1, optimizer=name, lr=1e-3))
        trainer.fit(Quiet())
        assert np.isfinite(trainer.state["history"]["train"][0])
