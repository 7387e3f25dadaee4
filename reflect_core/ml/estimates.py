"""Size and time estimates shown before a job starts, measured on this machine."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from reflect_core.data.generate import DatasetConfig, simulate_chunk
from reflect_core.ml.models import build_model, parameter_count
from reflect_core.ml.settings import ModelSettings, TrainSettings

BYTES_PER_VALUE = 4  # float32 arrays


def dataset_bytes(config: DatasetConfig) -> int:
    return config.n * 2 * (config.nq + config.n_profile) * BYTES_PER_VALUE


def generation_seconds(config: DatasetConfig, probe: int = 64) -> float:
    """Time to simulate ``probe`` films (after one warm-up call), scaled to N."""
    films = config.prior.sample(probe, config.seed, "uniform")
    simulate_chunk(config, films[:2], np.random.default_rng(0))
    t0 = time.perf_counter()
    simulate_chunk(config, films, np.random.default_rng(0))
    return (time.perf_counter() - t0) / probe * config.n


def model_size(settings: ModelSettings, n_q: int, n_z: int) -> tuple[int, int]:
    """(parameters, bytes of float32 weights)."""
    count = parameter_count(build_model(settings, n_q, n_z))
    return count, count * BYTES_PER_VALUE


def training_seconds(settings: ModelSettings, training: TrainSettings, n_train: int, n_q: int, n_z: int,
                     probe_batches: int = 3) -> float:
    """Forward + backward of a few batches on random data, scaled to all epochs."""
    model = build_model(settings, n_q, n_z)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9)
    x, y = torch.rand(training.batch_size, n_q), torch.rand(training.batch_size, n_z)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    step()
    t0 = time.perf_counter()
    for _ in range(probe_batches):
        step()
    per_batch = (time.perf_counter() - t0) / probe_batches
    return per_batch * math.ceil(n_train / training.batch_size) * training.epochs
