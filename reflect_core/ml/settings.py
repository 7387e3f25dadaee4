"""The settings of a network and of its training, as validated dataclasses.

Torch-free on purpose: the app, the limits and the job store check a spec without
loading torch; ``models`` and ``training`` build and run what these describe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from reflect_core.base.errors import InvalidInput
from reflect_core.base.settings_check import check_ints, from_mapping

ARCHITECTURES = ("compact_cnn", "pyreflect_cnn")


class ModelError(InvalidInput):
    """Model settings that cannot be built; the message names the setting."""


@dataclass(frozen=True)
class ModelSettings:
    arch: str = "compact_cnn"
    layers: int = 4  # convolution blocks
    channels: int = 32  # width of the first block (doubles each block, capped at 4×)
    hidden: int = 256  # dense layer between the convolutions and the profile
    dropout: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)


def settings_from_dict(raw: dict) -> ModelSettings:
    settings = from_mapping(ModelSettings, raw, "model", ModelError)
    if settings.arch not in ARCHITECTURES:
        raise ModelError(f"model.arch: must be one of {ARCHITECTURES}, got {settings.arch!r}")
    check_ints(settings, {"layers": (1, 64), "channels": (1, 1024), "hidden": (1, 65536)}, "model", ModelError)
    if isinstance(settings.dropout, bool) or not isinstance(settings.dropout, (int, float)) \
            or not 0.0 <= settings.dropout < 1.0:
        raise ModelError(f"model.dropout: must be in [0, 1), got {settings.dropout!r}")
    return settings


OPTIMIZERS = ("adam", "adamw", "sgd")


class TrainingError(InvalidInput):
    """Settings that cannot train; the message names the setting."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 25
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    optimizer: str = "adamw"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    patience: int = 8  # epochs without validation improvement before stopping; 0 = never
    checkpoint_every: int = 5  # epochs; 0 = only when paused

    def to_dict(self) -> dict:
        return asdict(self)


def train_settings_from_dict(raw: dict) -> TrainSettings:
    settings = from_mapping(TrainSettings, raw, "training", TrainingError)
    check_ints(settings, {"epochs": (1, 100_000), "batch_size": (1, 65_536), "seed": (0, 2**32 - 1),
                          "patience": (0, 100_000), "checkpoint_every": (0, 100_000)}, "training", TrainingError)
    for name in ("lr", "weight_decay"):
        value = getattr(settings, name)
        if (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
                or (name == "lr" and value == 0)):
            raise TrainingError(f"training.{name}: must be a finite number "
                                f"{'> 0' if name == 'lr' else '≥ 0'}, got {value!r}")
    if settings.optimizer not in OPTIMIZERS:
        raise TrainingError(f"training.optimizer: must be one of {OPTIMIZERS}, got {settings.optimizer!r}")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 0.5:
            raise TrainingError(f"training.{name}: must be between 0 and 0.5, got {value!r}")
    return settings
