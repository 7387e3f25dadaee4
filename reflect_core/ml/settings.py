"""The settings of a network and of its training, as validated dataclasses.

Torch-free on purpose: the app, the limits and the job store check a spec without
loading torch; ``models`` and ``training`` build and run what these describe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from reflect_core.base.errors import InvalidInput
from reflect_core.base.settings_check import check_ints, from_mapping
from reflect_core.physics.film import short_repr

ARCHITECTURES = ("compact_cnn", "pyreflect_cnn")
MAX_LAYERS, MAX_CHANNELS, MAX_HIDDEN = 64, 512, 8192


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
    # Physical bounds (the profiles allow less, accounts.limits): 64 convolution blocks pool any
    # 20,000-point curve to one value; 512 channels (×4 in deep blocks) and a dense width of 8192
    # already make ~10⁸ parameters, more than any NR → SLD mapping needs.
    check_ints(settings, {"layers": (1, MAX_LAYERS), "channels": (1, MAX_CHANNELS), "hidden": (1, MAX_HIDDEN)},
               "model", ModelError)
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
        # At most 1: a larger step or decay diverges with every optimizer here (compared before
        # isfinite, which overflows on a huge integer).
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
                or not math.isfinite(value) or (name == "lr" and value == 0)):
            raise TrainingError(f"training.{name}: must be a number {'> 0' if name == 'lr' else '≥ 0'} "
                                f"and ≤ 1, got {short_repr(value)}")
    if settings.optimizer not in OPTIMIZERS:
        raise TrainingError(f"training.optimizer: must be one of {OPTIMIZERS}, got {settings.optimizer!r}")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 0.5:
            raise TrainingError(f"training.{name}: must be between 0 and 0.5, got {value!r}")
    return settings


# --- size, without building anything -------------------------------------------------------------------------------

PYREFLECT_Q_POINTS, PYREFLECT_Z_POINTS = 308, 900  # the only grids pyreflect's CNN takes


def _conv_bn_count(c_in: int, c_out: int, kernel: int, batch_norm: bool) -> int:
    return c_in * c_out * kernel + c_out + (2 * c_out if batch_norm else 0)


def parameter_count_for(settings: ModelSettings, n_q: int, n_z: int) -> int:
    """The parameters ``models.build_model(settings, n_q, n_z)`` would have, in exact integers and
    without torch, so a size limit is checked before anything is allocated. For pyreflect's
    CNN it assumes its own 308 Q / 900 z points (building it refuses any other grid)."""
    if settings.arch == "pyreflect_cnn":  # pyreflect.models.cnn.CNN(layers)
        addition, curr, count = 255 / settings.layers, 1.0, 0
        for _ in range(settings.layers - 1):
            count += _conv_bn_count(int(curr + 0.5), int(curr + addition + 0.5), 51, True)
            curr += addition
        count += _conv_bn_count(int(curr + 0.5), 256, 51, True)
        return count + 256 * PYREFLECT_Q_POINTS * 2 * PYREFLECT_Z_POINTS + 2 * PYREFLECT_Z_POINTS
    c_in, length, count = 1, n_q, 0  # models.CompactCNN
    for k in range(settings.layers):
        c_out = settings.channels * min(2**k, 4)
        count += _conv_bn_count(c_in, c_out, 5, False)
        if length >= 4:
            length //= 2
        c_in = c_out
    return count + (c_in * length * settings.hidden + settings.hidden) + (settings.hidden * n_z + n_z)
