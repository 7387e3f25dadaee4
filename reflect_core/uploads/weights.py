"""PyTorch weights files (our model.pt and pyreflect's .pth): loaded as a state dict of
plain tensors and fitted to the declared network before anything runs them.

Guards against: pickles that load arbitrary globals (only torch's ``weights_only`` loader
unpickles, after the archive's listing passes the zip-bomb checks), training checkpoints
and other objects posing as state dicts, non-CPU, sparse or non-numeric tensors, weights
that do not fit the architecture, NaN or infinite values, and tensors that claim more
numbers than the file stores: zero-stride ("expanded") views, non-contiguous or offset
views, and two tensors on one storage. Sizes are bounded twice before anything is
allocated: from the network's settings (``parameter_count_for``, by the caller) and from
the declared shapes (a first pass on torch's ``meta`` device reads no tensor data). Values
are checked in place, never copied to float64.

torch is imported inside the functions that use it: this module sits on the import path of every
upload (films and curves too) and of pages that never touch weights, and torch costs ~200 MB.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING

from reflect_core.ml.settings import ModelError, ModelSettings, parameter_count_for
from reflect_core.uploads.common import check_zip_listing, error, short

if TYPE_CHECKING:
    import torch

MAX_TORCH_RECORDS = 10_000  # torch.save writes one zip record per tensor storage
# Parameters an uploaded network may have: compact CNNs train on CPUs (~1 M at the defaults);
# pyreflect's CNN is ~155 M at its 12 layers, the one architecture allowed that large.
MAX_PARAMETERS = {"compact_cnn": 50_000_000, "pyreflect_cnn": 200_000_000}
FINITE_CHUNK = 1 << 20  # values checked at a time: a few MB of booleans, whatever the tensor's size


def check_parameter_count(filename: str, settings: ModelSettings, n_q: int, n_z: int) -> int:
    """The network's parameter count, from its settings alone; UploadError over the upload limit."""
    count = parameter_count_for(settings, n_q, n_z)
    limit = MAX_PARAMETERS[settings.arch]
    if count > limit:
        raise error(filename, f"its {settings.arch} settings declare {count:,} parameters for {n_q} Q / {n_z} z "
                              f"points, over the limit of {limit:,} for uploaded {settings.arch} models")
    return count


def load_state_dict(filename: str, label: str, raw: bytes, max_bytes: int,
                    max_values: int = max(MAX_PARAMETERS.values())) -> dict[str, torch.Tensor]:
    """A state dict of plain CPU tensors, unpickled only by torch's weights_only loader, each
    tensor owning exactly the bytes its shape declares, at most ``max_values`` numbers in all."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise error(filename, f"{label} is not a PyTorch weights file (torch.save writes a zip archive; "
                              f"files from PyTorch before 1.6 must be re-saved)") from None
    with archive:  # torch's own reader inflates records: the same bomb checks first
        check_zip_listing(filename, archive.infolist(), max_bytes, MAX_TORCH_RECORDS, f"{label} archive")
    declared = _torch_load(filename, label, raw, "meta")  # shapes and storage sizes, no tensor data read
    _check_tensors(filename, label, declared, "meta", max_values)
    state = _torch_load(filename, label, raw, "cpu")
    _check_tensors(filename, label, state, "cpu", max_values)
    return state


def _torch_load(filename: str, label: str, raw: bytes, device: str):
    import torch

    try:
        state = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's restricted unpickler and reader raise many kinds
        raise error(filename, f"{label} {_torch_refusal(exc)}") from None
    if not isinstance(state, dict):
        raise error(filename, f"{label} holds a {type(state).__name__}, not a state dict (names → tensors)")
    return state


def _check_tensors(filename: str, label: str, state: dict, device: str, max_values: int) -> None:
    """Plain tensors, each stored whole and alone, at most ``max_values`` numbers in all."""
    import torch

    total, storages = 0, {}
    for key, value in state.items():
        if not isinstance(key, str) or not _plain_tensor(value, device):
            kind = (f"a {value.dtype} {value.layout} tensor on {value.device}" if isinstance(value, torch.Tensor)
                    else f"{type(value).__name__} (a training checkpoint? save model.state_dict() alone)")
            raise error(filename, f"{label} is not a state dict of plain tensors: {str(key)[:60]!r} holds {kind}")
        declared, stored = value.numel() * value.element_size(), value.untyped_storage().nbytes()
        if not value.is_contiguous() or value.storage_offset() != 0 or stored != declared:
            raise error(filename, f"{label}: {key[:60]!r} is a view, not a tensor of its own: its shape "
                                  f"{list(value.shape)} declares {declared:,} bytes, its storage holds {stored:,} "
                                  f"(save {{name: tensor.clone()}} for each tensor)")
        total += value.numel()
        if total > max_values:
            raise error(filename, f"{label} declare over {max_values:,} numbers; refused before reading them")
        pointer = value.untyped_storage().data_ptr()
        if device == "cpu" and declared and pointer in storages:
            raise error(filename, f"{label}: {key[:60]!r} and {storages[pointer][:60]!r} share one storage; "
                                  f"each tensor must have its own")
        storages[pointer] = key


def _plain_tensor(value, device: str) -> bool:
    """Dense numbers on ``device``, as a state dict of our networks holds (int64 only for BatchNorm's counter)."""
    import torch

    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == device
            and (value.is_floating_point() or value.dtype == torch.int64))


def _torch_refusal(exc: Exception) -> str:
    """torch's long weights_only message, in a line."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"asks to load {found.group(1)} when unpickled; refused (only tensors are loaded)"
    return f"is not a plain weights file ({short(exc)})"


def _first_three(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _fit_problems(expected: dict, state: dict) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors, in words."""
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    wrong = [f"{name} is {list(state[name].shape)} but must be {list(tensor.shape)}"
             for name, tensor in expected.items() if name in state and state[name].shape != tensor.shape]
    problems = []
    if missing:
        problems.append(f"missing {_first_three(missing)}")
    if unexpected:
        problems.append(f"unexpected {_first_three(unexpected)}")
    if wrong:
        problems.append(_first_three(wrong))
    return problems


def _all_finite(tensor: torch.Tensor) -> bool:
    """Every value finite, checked a chunk at a time in the tensor's own dtype (no float64 copy)."""
    import torch

    flat = tensor.reshape(-1)  # a view: load_state_dict refused anything that is not contiguous
    return all(bool(torch.isfinite(chunk).all()) for chunk in flat.split(FINITE_CHUNK))


def fit_weights(filename: str, label: str, settings, n_q: int, n_z: int, state: dict) -> torch.nn.Module:
    """The declared network with ``state`` in it; its size is checked from the settings first,
    and it is built on the meta device, so checking a 155 M-parameter model allocates nothing
    but the weights already loaded."""
    import torch

    from reflect_core.ml.models import build_model

    check_parameter_count(filename, settings, n_q, n_z)
    try:
        with torch.device("meta"):
            model = build_model(settings, n_q, n_z)
    except ModelError as exc:
        raise error(filename, str(exc)) from None
    problems = _fit_problems(model.state_dict(), state)
    if not problems:
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:  # whatever the name-and-shape comparison cannot see
            problems = [short(exc)]
    if problems:
        raise error(filename, f"{label} do not fit the {settings.arch} for {n_q} Q / {n_z} z points: "
                              f"{'; '.join(problems)}")
    for name, tensor in state.items():  # after the fit, so sizes are the architecture's, not the file's claim
        if tensor.is_floating_point() and not _all_finite(tensor):
            raise error(filename, f"{label} have NaN or infinite values (in {name})")
    return model
