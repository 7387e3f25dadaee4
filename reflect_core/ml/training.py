"""NR → SLD training with a real three-way split, checkpoints and exact resume.

Test curves never touch training, normalisation or model selection. Shuffling
uses a generator seeded per epoch and the dropout RNG state is checkpointed,
so a run paused mid-epoch and resumed ends with the same weights as one that
was never interrupted.

Devices (``reflect_core.ml.device``): the same loop runs on the CPU and on CUDA. On
CUDA the training arrays stay on the GPU when they take at most half its free memory
(else each batch is copied over), the forward pass runs under bf16 autocast, and the
loss, the weights and the optimizer stay float32. Checkpoints hold CPU tensors only
and load with ``map_location="cpu"``, so a run paused on a GPU resumes on a CPU and back.

What is guaranteed, and what is not:

- CPU: bit-identical. A run paused and resumed on the CPU ends with exactly the weights
  of one never interrupted (tests/test_training.py), and no autocast is used.
- CUDA, resumed on the same device: the same split, the same normalisation, and the
  same batches in the same order (the shuffle is seeded per epoch on a CPU generator);
  the dropout stream is restored from the saved CUDA generator state. The weights are
  close but NOT bit-identical to an uninterrupted run, nor between two runs: cuDNN
  picks kernels by benchmarking (``cudnn.benchmark``), some kernels accumulate with
  atomics in a varying order, and bf16 rounding amplifies such differences.
  ``torch.use_deterministic_algorithms`` is deliberately not used (speed).
- Across devices (GPU checkpoint resumed on the CPU or back): the split, normalisation,
  epoch, batch position and batch order are kept; the dropout stream and the numerics
  differ, so the result is a statistically equivalent run, not the same weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reflect_core.base.job_protocol import NeverInterrupt, Paused, Stopped
from reflect_core.ml.device import autocast, choose_device, keep_resident, rng_states, set_rng_states, to_cpu
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
    """One training run over in-memory normalised arrays, on ``device`` (None: ``choose_device``,
    i.e. ``$REFLECT_DEVICE`` or CUDA when available, else the CPU). Splits stay on the CPU;
    ``predict_normalized`` returns CPU tensors; ``best_weights`` is a CPU state dict."""

    def __init__(self, nr: np.ndarray, sld: np.ndarray, model_settings: ModelSettings, settings: TrainSettings,
                 device=None):
        self.settings, self.model_settings = settings, model_settings
        self.device = choose_device(device)
        train, val, test = split_indices(len(nr), settings)
        self.normalizer = Normalizer.fit(nr[train], sld[train])
        self.q, self.z = np.asarray(nr[0, 0], float), np.asarray(sld[0, 0], float)
        self.splits = {
            name: Split(torch.from_numpy(self.normalizer.nr(nr[idx, 1])),
                        torch.from_numpy(self.normalizer.sld(sld[idx, 1])), idx)
            for name, idx in (("train", train), ("val", val), ("test", test))
        }
        train_split = self.splits["train"]
        self.resident = keep_resident((train_split.x, train_split.y), self.device)
        self.train_x, self.train_y = ((train_split.x.to(self.device), train_split.y.to(self.device))
                                      if self.resident else (train_split.x, train_split.y))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # speed over run-to-run identity (see the module docstring)
        torch.manual_seed(settings.seed)  # built on the CPU, then moved: the same initial weights everywhere
        self.model = build_model(model_settings, self.q.size, self.z.size).to(self.device)
        self._pending_loss = None  # on CUDA, the epoch's loss sum stays on the GPU until needed
        self.optimizer = _optimizer(settings, self.model.parameters())
        self.loss = nn.MSELoss()
        self.state = {"epoch": 0, "batch": 0, "loss_sum": 0.0, "seen": 0, "best_val": math.inf, "best_epoch": 0,
                      "bad_epochs": 0, "elapsed": 0.0, "history": {"train": [], "val": [], "val_rmse": [], "time": []}}
        self.best_weights = to_cpu(self.model.state_dict())

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        """Every tensor saved is a CPU tensor: the checkpoint does not depend on the device."""
        self._flush_loss()
        tmp = path.with_suffix(".tmp")
        torch.save({"model": to_cpu(self.model.state_dict()), "optimizer": to_cpu(self.optimizer.state_dict()),
                    "best_weights": to_cpu(self.best_weights), "state": self.state,
                    **rng_states(self.device)}, tmp)
        tmp.replace(path)

    def load_checkpoint(self, path: Path) -> None:
        """Loads onto the CPU first, then into this trainer's device (wherever it was written)."""
        saved = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])  # moves its state to the parameters' device
        self.best_weights = saved["best_weights"]
        self.state = saved["state"]
        set_rng_states(saved, self.device)

    def _flush_loss(self) -> None:
        if self._pending_loss is not None:
            self.state["loss_sum"] += float(self._pending_loss)
            self._pending_loss = None

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
        with torch.no_grad(), autocast(self.device):
            out = torch.cat([self.model(x[i:i + 1024].to(self.device)).float().cpu() for i in range(0, len(x), 1024)])
        self.model.train()
        return out

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the rows ``idx`` of the training split; returns the loss."""
        if self.resident:
            x, y = self.train_x[idx], self.train_y[idx]
        else:
            x, y = self.train_x[idx].to(self.device), self.train_y[idx].to(self.device)
        self.optimizer.zero_grad()
        with autocast(self.device):  # bf16 on CUDA, nothing on the CPU
            out = self.model(x)
        loss = self.loss(out.float(), y)  # float32 loss (a no-op cast on the CPU)
        loss.backward()
        self.optimizer.step()
        return loss

    def fit(self, reporter, control=NeverInterrupt(), checkpoint: Path | None = None) -> None:
        s, st = self.settings, self.state
        train = self.splits["train"]
        n_batches = math.ceil(len(train.x) / s.batch_size)
        started = time.monotonic() - st["elapsed"]
        self.model.train()
        while st["epoch"] < s.epochs:
            epoch = st["epoch"]
            order = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(s.seed * 100_003 + epoch))
            if self.resident:
                order = order.to(self.device)
            for b in range(st["batch"], n_batches):
                idx = order[b * s.batch_size:(b + 1) * s.batch_size]
                loss = self._step(idx)
                if self.device.type == "cpu":
                    st["loss_sum"] += loss.item() * len(idx)
                else:  # no host sync per batch
                    weighted = loss.detach().double() * len(idx)
                    self._pending_loss = weighted if self._pending_loss is None else self._pending_loss + weighted
                st["seen"] += len(idx)
                st["batch"] = b + 1
                reporter.phase("training", epoch * n_batches + b + 1, s.epochs * n_batches)
                self._obey(control, checkpoint, started)
            self._flush_loss()
            train_loss = st["loss_sum"] / max(st["seen"], 1)
            val_loss, val_rmse = self.validation()
            st.update(epoch=epoch + 1, batch=0, loss_sum=0.0, seen=0, elapsed=time.monotonic() - started)
            for key, value in (("train", train_loss), ("val", val_loss), ("val_rmse", val_rmse),
                               ("time", st["elapsed"])):
                st["history"][key].append(value)
            reporter.epoch(epoch + 1, s.epochs, train_loss, val_loss)
            if val_loss < st["best_val"]:
                st.update(best_val=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                self.best_weights = to_cpu(self.model.state_dict())
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
