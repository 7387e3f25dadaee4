"""Networks that map a normalised NR curve (B, L) to a normalised SLD profile (B, M)."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from reflect_core.ml.settings import ModelError, ModelSettings


class CompactCNN(nn.Module):
    """A small 1-D CNN: (conv, GELU, max-pool) blocks, then two dense layers.

    Sized to train on two CPU cores in minutes (~1 M parameters at the defaults
    for 308 Q points and 900 z points), where pyreflect's 155 M-parameter CNN
    needs hours per epoch.
    """

    def __init__(self, n_q: int, n_z: int, settings: ModelSettings):
        super().__init__()
        blocks, c_in, length = [], 1, n_q
        for k in range(settings.layers):
            c_out = settings.channels * min(2**k, 4)
            blocks += [nn.Conv1d(c_in, c_out, kernel_size=5, padding=2), nn.GELU()]
            if length >= 4:
                blocks.append(nn.MaxPool1d(2))
                length //= 2
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * length, settings.hidden),
            nn.GELU(),
            nn.Dropout(settings.dropout),
            nn.Linear(settings.hidden, n_z),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


class PyreflectCNN(nn.Module):
    """pyreflect's own CNN class, so pyreflect-trained weights load and GPU runs
    match its results. It predicts (z, SLD) channels; the SLD channel is used."""

    def __init__(self, n_q: int, n_z: int, settings: ModelSettings):
        super().__init__()
        if importlib.util.find_spec("pyreflect") is None:
            raise ModelError("model.arch 'pyreflect_cnn' needs pyreflect installed (scripts/setup.sh installs it)")
        if (n_q, n_z) != (308, 900):
            raise ModelError(f"pyreflect's CNN takes 308 Q points and predicts 900 z points; this dataset has "
                             f"{n_q} and {n_z}")
        from pyreflect.models.cnn import CNN

        self.net = CNN(layers=settings.layers, dropout_prob=settings.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))[:, 1, :]


def build_model(settings: ModelSettings, n_q: int, n_z: int) -> nn.Module:
    model_class = CompactCNN if settings.arch == "compact_cnn" else PyreflectCNN
    return model_class(n_q, n_z, settings)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
