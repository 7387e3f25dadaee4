"""PyTorch weights files (our model.pt and pyreflect's .pth): loaded as a state dict of
plain tensors and fitted to the declared network before anything runs them.

Guards against: pickles that load arbitrary globals (only torch's ``weights_only`` loader
unpickles, after the archive's listing passes the zip-bomb checks), training checkpoints
and other objects posing as state dicts, non-CPU, sparse or non-numeric tensors, weights
that do not fit the architecture, and NaN or infinite values.
"""

from __future__ import annotations

import io
import re
import zipfile

import torch

from reflect_core.ml.models import build_model
from reflect_core.ml.settings import ModelError
from reflect_core.uploads.common import check_zip_listing, error, short

MAX_TORCH_RECORDS = 10_000  # torch.save writes one zip record per tensor storage


def load_state_dict(filename: str, label: str, raw: bytes, max_bytes: int) -> dict[str, torch.Tensor]:
    """A state dict of plain CPU tensors, unpickled only by torch's weights_only loader."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise error(filename, f"{label} is not a PyTorch weights file (torch.save writes a zip archive; "
                              f"files from PyTorch before 1.6 must be re-saved)") from None
    with archive:  # torch's own reader inflates records: the same bomb checks first
        check_zip_listing(filename, archive.infolist(), max_bytes, MAX_TORCH_RECORDS, f"{label} archive")
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's restricted unpickler and reader raise many kinds
        raise error(filename, f"{label} {_torch_refusal(exc)}") from None
    if not isinstance(state, dict):
        raise error(filename, f"{label} holds a {type(state).__name__}, not a state dict (names → tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not _plain_tensor(value):
            kind = (f"a {value.dtype} {value.layout} tensor on {value.device}" if isinstance(value, torch.Tensor)
                    else f"{type(value).__name__} (a training checkpoint? save model.state_dict() alone)")
            raise error(filename, f"{label} is not a state dict of plain tensors: {str(key)[:60]!r} holds {kind}")
    return state


def _plain_tensor(value) -> bool:
    """Dense CPU numbers, as a state dict of our networks holds (int64 only for BatchNorm's counter)."""
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
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


def fit_weights(filename: str, label: str, settings, n_q: int, n_z: int, state: dict) -> torch.nn.Module:
    """The declared network with ``state`` in it; built on the meta device, so checking a
    155 M-parameter model allocates nothing but the weights already loaded."""
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
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum(dtype=torch.float64)):
            raise error(filename, f"{label} have NaN or infinite values (in {name})")
    return model
