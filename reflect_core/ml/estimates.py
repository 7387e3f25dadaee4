"""Size and time estimates shown before a job starts, measured on this machine without
allocating anything the size of the job: parameters are counted from the settings
(``settings.parameter_count_for``), and the training time is measured on the real model
only when it is small, otherwise on a small model of the same kind and scaled by the
arithmetic each needs (multiply-adds per curve, counted from the settings like the size).

Torch is imported only to time a model, so the limits can use the counts torch-free. The app
times it in a short-lived process of its own (``training_seconds_apart``): torch (~200 MB) and
the probe's buffers would otherwise stay in the server's memory for good."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reflect_core.ml.settings import (
    PYREFLECT_Q_POINTS,
    ModelSettings,
    TrainingError,
    TrainSettings,
    parameter_count_for,
    settings_from_dict,
    train_settings_from_dict,
)
from reflect_core.physics import warmup

if TYPE_CHECKING:
    from reflect_core.data.generate import DatasetConfig

BYTES_PER_VALUE = 4  # float32 arrays
PROBE_SECONDS = 0.3  # time measured per estimate: the probe grows until it takes this long
# A model this small is timed itself (weights, gradients, optimizer state and activations of a
# batch stay under ~100 MB); a larger one through a smaller one like it (``_probe``).
DIRECT_BUDGET_BYTES = 100_000_000


def dataset_bytes(config: DatasetConfig) -> int:
    return config.n * 2 * (config.nq + config.n_profile) * BYTES_PER_VALUE


def generation_seconds(config: DatasetConfig, probe: int = 64) -> float:
    """Time to simulate a few films (after one warm-up film), scaled to N. The number timed
    grows from 1 until the timing takes PROBE_SECONDS, so an expensive film (exact mode on a
    long grid) is timed once rather than ``probe`` times."""
    from reflect_core.data.generate import simulate_chunk  # here: the timing child needs no physics (numba)

    films = config.prior.sample(probe, config.seed, "uniform")
    warmup.wait_for_warmup()  # a job's workers run the compiled kernels: time those, not their numpy twins
    simulate_chunk(config, films[:1], np.random.default_rng(0))  # compiles, builds the Q plan
    n = 1
    while True:
        t0 = time.perf_counter()
        simulate_chunk(config, films[:n], np.random.default_rng(0))
        elapsed = time.perf_counter() - t0
        if elapsed >= PROBE_SECONDS or n >= probe:
            return elapsed / n * config.n
        n = min(probe, n * 4)


def model_size(settings: ModelSettings, n_q: int, n_z: int) -> tuple[int, int]:
    """(parameters, bytes of float32 weights), counted from the settings (nothing is built)."""
    count = parameter_count_for(settings, n_q, n_z)
    return count, count * BYTES_PER_VALUE


def _layer_shapes(settings: ModelSettings, n_q: int):
    """(c_in, c_out, kernel, length) of each convolution of ``models.build_model``."""
    if settings.arch == "pyreflect_cnn":
        addition, curr = 255 / settings.layers, 1.0
        for _ in range(settings.layers - 1):
            yield int(curr + 0.5), int(curr + addition + 0.5), 51, PYREFLECT_Q_POINTS
            curr += addition
        yield int(curr + 0.5), 256, 51, PYREFLECT_Q_POINTS
        return
    c_in, length = 1, n_q
    for k in range(settings.layers):
        c_out = settings.channels * min(2**k, 4)
        yield c_in, c_out, 5, length
        length = length // 2 if length >= 4 else length
        c_in = c_out


def multiply_adds(settings: ModelSettings, n_q: int, n_z: int) -> int:
    """Multiply-adds of one curve's forward pass: convolutions plus dense layers (whose
    multiply-adds equal their weights)."""
    conv = sum(c_in * c_out * kernel * length for c_in, c_out, kernel, length in _layer_shapes(settings, n_q))
    conv_weights = sum(c_in * c_out * kernel + c_out for c_in, c_out, kernel, _ in _layer_shapes(settings, n_q))
    return conv + max(parameter_count_for(settings, n_q, n_z) - conv_weights, 0)


def activations(settings: ModelSettings, n_q: int) -> int:
    """Values a forward pass keeps per curve for the backward pass (about three per conv output)."""
    return sum(3 * c_out * length for _, c_out, _, length in _layer_shapes(settings, n_q))


def training_bytes(settings: ModelSettings, batch_size: int, n_q: int, n_z: int) -> int:
    """About what one training step holds: weights, gradients and two optimizer moments, plus a
    batch's activations (float32)."""
    return BYTES_PER_VALUE * (4 * parameter_count_for(settings, n_q, n_z) + batch_size * activations(settings, n_q))


def _seconds_per_batch(settings: ModelSettings, batch_size: int, n_q: int, n_z: int) -> float:
    """Forward + backward + step of one batch of random data, measured after one warm-up step."""
    import torch

    from reflect_core.ml.models import build_model

    model = build_model(settings, n_q, n_z)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9)
    x, y = torch.rand(batch_size, n_q), torch.rand(batch_size, n_z)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= PROBE_SECONDS or steps >= 3:
            return elapsed / steps


def _probe(settings: ModelSettings, batch: int, n_q: int, n_z: int) -> tuple[ModelSettings, int, int, int]:
    """A compact CNN as close to the job's as fits DIRECT_BUDGET_BYTES: the grids, the dense
    width, the batch and the channels are halved in turn until it fits."""
    if settings.arch != "compact_cnn":
        settings = ModelSettings(layers=min(settings.layers, 8), channels=64, hidden=1024, dropout=settings.dropout)
    # In this order (measured: within a factor 2 of the real model's time, where halving the batch
    # or the channels first is up to 10× off: narrow GEMMs run slower per multiply-add).
    sizes = {"n_q": n_q, "n_z": n_z, "hidden": settings.hidden, "batch": batch, "channels": settings.channels}
    least = {"n_q": 64, "batch": 8, "hidden": 64, "n_z": 64, "channels": 8}

    def fits(sizes) -> bool:
        probe = ModelSettings(layers=settings.layers, channels=sizes["channels"], hidden=sizes["hidden"])
        return training_bytes(probe, sizes["batch"], sizes["n_q"], sizes["n_z"]) <= DIRECT_BUDGET_BYTES

    while not fits(sizes) and any(sizes[k] > least[k] for k in sizes):
        for name in sizes:
            if sizes[name] > least[name] and not fits(sizes):
                sizes[name] = max(least[name], sizes[name] // 2)
    probe = ModelSettings(layers=settings.layers, channels=sizes["channels"], hidden=sizes["hidden"],
                          dropout=settings.dropout)
    return probe, sizes["batch"], sizes["n_q"], sizes["n_z"]


def training_seconds(settings: ModelSettings, training: TrainSettings, n_train: int, n_q: int, n_z: int) -> float:
    """Seconds for every epoch: the real model's batch timed when it is small enough to build
    here, otherwise the batch of a smaller model like it (``_probe``), scaled by the
    multiply-adds of each. Nothing the size of the job is allocated."""
    batches = math.ceil(n_train / training.batch_size) * training.epochs
    probe, batch, probe_q, probe_z = _probe(settings, training.batch_size, n_q, n_z)
    per_batch = _seconds_per_batch(probe, batch, probe_q, probe_z)
    if (probe, batch, probe_q, probe_z) == (settings, training.batch_size, n_q, n_z):
        return per_batch * batches
    ratio = multiply_adds(settings, n_q, n_z) * training.batch_size / (multiply_adds(probe, probe_q, probe_z) * batch)
    return per_batch * max(ratio, 1.0) * batches


APART_TIMEOUT_S = 300.0  # a loaded 2-core box needs ~10 s (most of it importing torch)
ROOT = Path(__file__).resolve().parents[2]  # the child's working directory: reflect_core need not be installed


def training_seconds_apart(settings: ModelSettings, training: TrainSettings, n_train: int, n_q: int,
                           n_z: int) -> float:
    """``training_seconds`` measured in a child process (``python -m reflect_core.ml.estimates``),
    so torch is never loaded here; TrainingError when the child fails."""
    request = json.dumps({"model": settings.to_dict(), "training": training.to_dict(), "n_train": n_train,
                          "n_q": n_q, "n_z": n_z})
    try:
        done = subprocess.run([sys.executable, "-m", "reflect_core.ml.estimates"], input=request, cwd=ROOT,
                              capture_output=True, text=True, timeout=APART_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrainingError(f"the training time could not be measured ({type(exc).__name__})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TrainingError(f"the training time could not be measured: {last[:300]}")
    return float(done.stdout)


if __name__ == "__main__":  # the child of training_seconds_apart
    asked = json.loads(sys.stdin.read())
    print(repr(training_seconds(settings_from_dict(asked["model"]), train_settings_from_dict(asked["training"]),
                                asked["n_train"], asked["n_q"], asked["n_z"])))
