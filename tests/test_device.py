"""Devices: the choice and its override, data residency, autocast only on CUDA, device-free checkpoints.

Runs on a CPU-only machine: what needs a GPU (speed, bf16 numerics, same-device CUDA resume)
is measured by bench/bench_gpu.py on a CUDA machine. CPU bit-exact resume is
tests/test_training.py::test_pause_mid_epoch_then_resume_equals_uninterrupted.
"""

import contextlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
from test_generate import SIMPLE
from test_training import SMALL_MODEL, PauseAt, Quiet

from reflect_core.base.job_protocol import NeverInterrupt, Paused
from reflect_core.data.generate import dataset_from_dict, generate
from reflect_core.ml import device as dev
from reflect_core.ml.device import DeviceError, choose_device, fits_in_memory, to_cpu
from reflect_core.ml.pipeline import train_on_arrays
from reflect_core.ml.settings import TrainingError, TrainSettings
from reflect_core.ml.spec import TrainSpec
from reflect_core.ml.training import Trainer

SETTINGS = TrainSettings(epochs=2, batch_size=32, seed=4, patience=0, checkpoint_every=0)


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    out = generate(dataset_from_dict({**SIMPLE, "n": 200, "seed": 2}), tmp_path_factory.mktemp("data"))
    return np.load(out / "nr_train.npy"), np.load(out / "sld_train.npy")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(dev.ENV, raising=False)


# -- the choice -------------------------------------------------------------------------------------------------------
def test_auto_is_cuda_when_available_else_cpu(monkeypatch, no_cuda):
    assert choose_device() == torch.device("cpu")
    assert choose_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")


def test_the_override_is_respected_and_the_argument_beats_the_environment(monkeypatch, no_cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(dev.ENV, "cpu")
    assert choose_device() == torch.device("cpu")  # a GPU machine told to use its CPU
    monkeypatch.setenv(dev.ENV, "CUDA")
    assert choose_device() == torch.device("cuda")
    assert choose_device("cpu") == torch.device("cpu")


def test_cuda_asked_for_without_cuda_is_a_clear_error_not_a_silent_fallback(monkeypatch, no_cuda):
    with pytest.raises(DeviceError, match=r"device: 'cuda' was asked for but CUDA is not available"):
        choose_device("cuda")
    monkeypatch.setenv(dev.ENV, "cuda:0")
    with pytest.raises(DeviceError, match=r"REFLECT_DEVICE: 'cuda:0' was asked for"):
        choose_device()
    assert issubclass(DeviceError, TrainingError)  # a ReflectError: one line from the CLI and the worker


@pytest.mark.parametrize("name", ["banana", "mps", "meta", ""])
def test_unknown_devices_are_refused(no_cuda, name):
    with pytest.raises(DeviceError, match="device"):
        choose_device(name or "cuda:x")


def test_a_trainer_and_a_job_refuse_cuda_before_doing_any_work(monkeypatch, no_cuda, arrays, tmp_path):
    nr, sld = arrays
    with pytest.raises(DeviceError):
        Trainer(nr, sld, SMALL_MODEL, SETTINGS, device="cuda")
    monkeypatch.setenv(dev.ENV, "cuda")
    spec = TrainSpec.parse({"dataset": {**SIMPLE, "n": 200}, "model": SMALL_MODEL.to_dict(),
                            "training": SETTINGS.to_dict()})
    with pytest.raises(DeviceError):
        train_on_arrays(nr, sld, spec, tmp_path / "model", Quiet())
    assert not (tmp_path / "model").exists()


# -- residency --------------------------------------------------------------------------------------------------------
def test_data_residency_is_bytes_needed_against_free_bytes():
    # the GPU recipe: 160,000 training curves of 308 Q + 900 z float32 values ≈ 773 MB
    needed = 160_000 * (308 + 900) * 4
    assert needed == 773_120_000
    assert fits_in_memory(needed, free_bytes=140 * 2**30)  # an H200
    assert fits_in_memory(needed, free_bytes=15 * 2**30)  # a T4
    assert not fits_in_memory(needed, free_bytes=1 * 2**30)  # half of 1 GiB is less
    assert fits_in_memory(500, free_bytes=1000) and not fits_in_memory(501, free_bytes=1000)
    assert fits_in_memory(900, free_bytes=1000, share=0.9) and not fits_in_memory(1, free_bytes=0)
    assert not fits_in_memory(-1, free_bytes=1000)


def test_nothing_is_moved_or_measured_on_the_cpu(arrays):
    x = torch.zeros(10, 4)
    assert dev.free_bytes(torch.device("cpu")) == 0
    assert not dev.keep_resident((x,), torch.device("cpu"))
    nr, sld = arrays
    trainer = Trainer(nr, sld, SMALL_MODEL, SETTINGS, device="cpu")
    assert trainer.device.type == "cpu" and not trainer.resident
    assert trainer.train_x is trainer.splits["train"].x  # no copy on the CPU
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())


def test_residency_uses_the_free_memory_reported_by_cuda(monkeypatch):
    cuda = torch.device("cuda")
    x = torch.zeros(1000, 250)  # 1,000,000 bytes
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3_000_000, 10_000_000))
    assert dev.free_bytes(cuda) == 3_000_000 and dev.keep_resident((x,), cuda)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_500_000, 10_000_000))
    assert not dev.keep_resident((x,), cuda)


# -- autocast ---------------------------------------------------------------------------------------------------------
def test_autocast_is_bf16_on_cuda_and_absent_on_the_cpu():
    assert isinstance(dev.autocast(torch.device("cpu")), contextlib.nullcontext)
    with pytest.warns(UserWarning):  # this machine has no CUDA: torch disables it, but the recipe is visible
        cuda = dev.autocast(torch.device("cuda"))
    assert isinstance(cuda, torch.autocast) and cuda.fast_dtype == torch.bfloat16 and cuda.device == "cuda"


# -- checkpoints ------------------------------------------------------------------------------------------------------
def tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


def paused_checkpoint(arrays, path):
    nr, sld = arrays
    trainer = Trainer(nr, sld, SMALL_MODEL, SETTINGS, device="cpu")
    with pytest.raises(Paused):
        trainer.fit(Quiet(), PauseAt(7), path)  # mid-epoch 2 (5 batches per epoch)
    return trainer


def test_every_tensor_in_a_checkpoint_is_a_cpu_tensor(arrays, tmp_path):
    path = tmp_path / "checkpoint.pt"
    paused_checkpoint(arrays, path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "best_weights", "state", "torch_rng"} <= set(saved)
    assert "cuda_rng" not in saved  # only a CUDA run saves the CUDA generator
    found = list(tensors(saved))
    assert len(found) > 10 and all(t.device.type == "cpu" for t in found)
    assert saved["state"]["epoch"] == 1 and saved["state"]["batch"] == 2


def test_load_checkpoint_maps_to_the_cpu_first(arrays, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    paused_checkpoint(arrays, path)
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    nr, sld = arrays
    Trainer(nr, sld, SMALL_MODEL, SETTINGS, device="cpu").load_checkpoint(path)
    assert calls == [{"map_location": "cpu", "weights_only": True}]


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(arrays, tmp_path):
    """A CUDA run's checkpoint is this one plus its CUDA generator state; on the CPU that state is
    ignored and the run continues from the same epoch, batch and weights."""
    path = tmp_path / "checkpoint.pt"
    paused_checkpoint(arrays, path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    saved["cuda_rng"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(saved, path)
    nr, sld = arrays
    resumed = Trainer(nr, sld, SMALL_MODEL, SETTINGS, device="cpu")
    resumed.load_checkpoint(path)
    assert (resumed.state["epoch"], resumed.state["batch"]) == (1, 2)
    for key, value in saved["model"].items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    resumed.fit(Quiet(), NeverInterrupt(), path)
    assert resumed.state["epoch"] == 2 and len(resumed.state["history"]["val"]) == 2


def test_to_cpu_copies_nested_state_and_keeps_module_metadata():
    state = OrderedDict(w=torch.ones(2), inner={"s": [torch.zeros(1), 3]}, step=torch.tensor(5.0))
    state._metadata = {"": {"version": 1}}
    copied = to_cpu(state)
    state["w"].add_(1)
    assert torch.equal(copied["w"], torch.ones(2))  # a copy, not a view of the live weights
    assert copied["inner"]["s"][1] == 3 and copied._metadata == {"": {"version": 1}}
    assert isinstance(copied, OrderedDict)


def test_rng_states_on_the_cpu_hold_only_the_cpu_generator():
    states = dev.rng_states(torch.device("cpu"))
    assert set(states) == {"torch_rng"}
    first = torch.rand(3)
    # a GPU run's CUDA state is ignored on the CPU (touching CUDA here would raise)
    dev.set_rng_states({**states, "cuda_rng": torch.zeros(16, dtype=torch.uint8)}, torch.device("cpu"))
    assert torch.equal(torch.rand(3), first)
