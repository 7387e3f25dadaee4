"""Where training runs: the device choice, data residency, bf16 autocast and device-free state.

One code path for every machine. ``choose_device`` picks CUDA when
``torch.cuda.is_available()``, else the CPU; a caller's ``device`` argument or the
environment variable ``REFLECT_DEVICE`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``)
overrides that. Asking for CUDA where there is none is an error (``DeviceError``,
naming the setting), never a silent fallback: a run asked to use a GPU that ran on
the CPU would take hours and look like a hang.

On CUDA the forward pass runs under ``torch.autocast("cuda", dtype=torch.bfloat16)``;
the loss is computed on float32 outputs and the weights and the optimizer stay in
float32. On the CPU nothing is autocast, so CPU runs are bit-identical to what they
were before GPU support.

Checkpoints hold CPU tensors only (``to_cpu``), so one written on a GPU resumes on a
CPU and back; the CPU generator state is always saved, the CUDA one separately and
only when training on CUDA.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict

import torch

from reflect_core.ml.settings import TrainingError

ENV = "REFLECT_DEVICE"
# Share of the free GPU memory the training arrays may take; the rest is for the model,
# the optimizer, activations and cuDNN workspaces.
RESIDENT_SHARE = 0.5


class DeviceError(TrainingError):
    """A device that was asked for and cannot be used."""


def choose_device(requested: str | torch.device | None = None) -> torch.device:
    """The training device: ``requested``, else ``$REFLECT_DEVICE``, else CUDA if available, else CPU."""
    source = "device"
    if requested is None:
        requested, source = os.environ.get(ENV) or "auto", ENV
    name = str(requested).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{source}: {requested!r} is not a device (cpu, cuda, cuda:N or auto)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"{source}: {requested!r} is not supported (cpu, cuda, cuda:N or auto)")
    if not torch.cuda.is_available():
        raise DeviceError(f"{source}: {requested!r} was asked for but CUDA is not available on this machine "
                          f"(torch {torch.__version__}); use 'cpu' or 'auto'")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"{source}: {requested!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    return device


def fits_in_memory(bytes_needed: int, free_bytes: int, share: float = RESIDENT_SHARE) -> bool:
    """Whether arrays of ``bytes_needed`` may live on a device with ``free_bytes`` free
    (at most ``share`` of it, leaving the rest to the model and the activations)."""
    return 0 <= bytes_needed <= share * free_bytes


def free_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device (0 for the CPU, where nothing is moved)."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def keep_resident(tensors, device: torch.device) -> bool:
    """Whether ``tensors`` should be copied to ``device`` once (CUDA and they fit), rather
    than batch by batch from host memory."""
    if device.type != "cuda":
        return False
    return fits_in_memory(sum(t.element_size() * t.nelement() for t in tensors), free_bytes(device))


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing at all on the CPU (CPU results stay bit-identical)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_cpu(value):
    """A copy of ``value`` (tensors, dicts, lists, tuples) whose tensors are all CPU tensors.

    Always copies tensors (also those already on the CPU), so a saved best state is not
    changed by later optimizer steps; keeps an ``OrderedDict``'s ``_metadata`` (module
    versions ``load_state_dict`` reads)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            out[key] = to_cpu(item)
        if hasattr(value, "_metadata"):
            out._metadata = value._metadata
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(item) for item in value)
    return value


def rng_states(device: torch.device) -> dict:
    """The generator states a resume needs: CPU always; the device's CUDA generator when on CUDA."""
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device).cpu()
    return states


def set_rng_states(saved: dict, device: torch.device) -> None:
    """Restore what ``rng_states`` saved. A CUDA state is restored only on CUDA, and is
    absent from a checkpoint written on the CPU: crossing devices keeps the data order
    (seeded per epoch on the CPU) but not the dropout stream."""
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in saved:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
