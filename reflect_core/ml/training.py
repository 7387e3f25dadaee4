"""NR → SLD training with a real three-way split, checkpoints and exact resume.

Test curves never touch training, normalisation or model selection. Shuffling
uses a generator seeded per epoch and the dropout RNG state is checkpointed,
so a run paused mid-epoch and resumed ends with the same weights as one that
was never interrupted.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reflect_core.base.job_protocol import NeverInterrupt, Paused, Stopped
from reflect_core.ml.models import build_model
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import ModelSettings, TrainingError, TrainSettings

CHECKPOINT = "checkpoint.pt"


def split_indices(n: int, settings: TrainSettings):
    """(train, validation, test) index arrays: disjoint, seeded, test fixed first."""
    order = np.random.default_rng(settings.seed).permutation(n)
    n_test = max(1, int(round(n * settings.test_fraction)))
    n_val = max(1, int(round(n * settings.val_fraction)))
    if n - n_test - n_val < 1:
        raise TrainingError(f"training: {n} curves are too few to split into train, validation and test")
    return np.sort(order[n_test + n_val:]), np.sort(order[n_test:n_test + n_val]), np.sort(order[:n_test])


def _optimizer(settings: TrainSettings, params):
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(params, lr=settings.lr, weight_decay=settings.weight_decay, momentum=0.9)


@dataclass
class Split:
    x: torch.Tensor  # normalised log R (n, L)
    y: torch.Tensor  # normalised SLD (n, M)
    index: np.ndarray  # rows of the dataset


class Trainer:
    """One training run over in-memory normalised arrays."""

    def __init__(self, nr: np.ndarray, sld: np.ndarray, model_settings: ModelSettings, settings: TrainSettings):
        self.settings, self.model_settings = settings, model_settings
        train, val, test = split_indices(len(nr), settings)
        self.normalizer = Normalizer.fit(nr[train], sld[train])
        self.q, self.z = np.asarray(nr[0, 0], float), np.asarray(sld[0, 0], float)
        self.splits = {
            name: Split(torch.from_numpy(self.normalizer.nr(nr[idx, 1])),
                        torch.from_numpy(self.normalizer.sld(sld[idx, 1])), idx)
            for name, idx in (("train", train), ("val", val), ("test", test))
        }
        torch.manual_seed(settings.seed)
        self.model = build_model(model_settings, self.q.size, self.z.size)
        self.optimizer = _optimizer(settings, self.model.parameters())
        self.loss = nn.MSELoss()
        self.state = {"epoch": 0, "batch": 0, "loss_sum": 0.0, "seen": 0, "best_val": math.inf, "best_epoch": 0,
                      "bad_epochs": 0, "elapsed": 0.0, "history": {"train": [], "val": [], "val_rmse": [], "time": []}}
        self.best_weights = copy.deepcopy(self.model.state_dict())

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "best_weights": self.best_weights, "state": self.state, "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(path)

    def load_checkpoint(self, path: Path) -> None:
        saved = torch.load(path, weights_only=True)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.best_weights = saved["best_weights"]
        self.state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])

    # -- the loop ---------------------------------------------------------------------------------
    def validation(self) -> tuple[float, float]:
        """(normalised MSE, SLD RMSE in 10⁻⁶ Å⁻²) on the validation split."""
        val = self.splits["val"]
        pred = self.predict_normalized(val.x)
        mse = float(self.loss(pred, val.y))
        scale = self.normalizer.sld_max - self.normalizer.sld_min
        return mse, math.sqrt(mse) * scale

    def predict_normalized(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            out = torch.cat([self.model(x[i:i + 1024]) for i in range(0, len(x), 1024)])
        self.model.train()
        return out

    def fit(self, reporter, control=NeverInterrupt(), checkpoint: Path | None = None) -> None:
        s, st = self.settings, self.state
        train = self.splits["train"]
        n_batches = math.ceil(len(train.x) / s.batch_size)
        started = time.monotonic() - st["elapsed"]
        self.model.train()
        while st["epoch"] < s.epochs:
            epoch = st["epoch"]
            order = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(s.seed * 100_003 + epoch))
            for b in range(st["batch"], n_batches):
                idx = order[b * s.batch_size:(b + 1) * s.batch_size]
                self.optimizer.zero_grad()
                loss = self.loss(self.model(train.x[idx]), train.y[idx])
                loss.backward()
                self.optimizer.step()
                st["loss_sum"] += loss.item() * len(idx)
                st["seen"] += len(idx)
                st["batch"] = b + 1
                reporter.phase("training", epoch * n_batches + b + 1, s.epochs * n_batches)
                self._obey(control, checkpoint, started)
            train_loss = st["loss_sum"] / max(st["seen"], 1)
            val_loss, val_rmse = self.validation()
            st.update(epoch=epoch + 1, batch=0, loss_sum=0.0, seen=0, elapsed=time.monotonic() - started)
            for key, value in (("train", train_loss), ("val", val_loss), ("val_rmse", val_rmse),
                               ("time", st["elapsed"])):
                st["history"][key].append(value)
            reporter.epoch(epoch + 1, s.epochs, train_loss, val_loss)
            if val_loss < st["best_val"]:
                st.update(best_val=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                self.best_weights = copy.deepcopy(self.model.state_dict())
            else:
                st["bad_epochs"] += 1
            if s.patience and st["bad_epochs"] >= s.patience:
                reporter.log(f"early stop: no validation improvement for {s.patience} epochs "
                             f"(best epoch {st['best_epoch']})")
                break
            if checkpoint is not None and s.checkpoint_every and st["epoch"] % s.checkpoint_every == 0:
                self.save_checkpoint(checkpoint)
        self.model.load_state_dict(self.best_weights)

    def _obey(self, control, checkpoint: Path | None, started: float) -> None:
        request = control.requested()
        if request == "stop":
            raise Stopped(f"stopped in epoch {self.state['epoch'] + 1}")
        if request == "pause":
            if checkpoint is None:
                raise Stopped("pause requested but this run has nowhere to keep a checkpoint")
            self.state["elapsed"] = time.monotonic() - started
            self.save_checkpoint(checkpoint)
            raise Paused(f"paused in epoch {self.state['epoch'] + 1} after batch {self.state['batch']}")
