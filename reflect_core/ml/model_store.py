"""A saved model is a directory: ``model.pt`` (state dict) + ``model.json`` (everything
needed to use it: architecture, Q grid, resolution, z grid, normalisation, prior,
metrics, versions). Loading never unpickles: ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from reflect_core.ml.models import build_model
from reflect_core.ml.settings import settings_from_dict
from reflect_core.ml.preprocess import Normalizer
from reflect_core.base.errors import InvalidInput

WEIGHTS, META = "model.pt", "model.json"
MAX_WEIGHTS_BYTES = 1_000_000_000


class ModelLoadError(InvalidInput):
    """A model directory that cannot be used; the message names the file and the reason."""


def versions() -> dict:
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "numba", "pyreflect-nr"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return found


def save_model(out_dir, model: torch.nn.Module, meta: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / WEIGHTS)
    (out_dir / META).write_text(json.dumps({**meta, "versions": versions()}, indent=1))
    return out_dir


def load_model(model_dir):
    """(model in eval mode, metadata dict, Normalizer)."""
    model_dir = Path(model_dir)
    try:
        meta = json.loads((model_dir / META).read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{model_dir}: no {META} (not a model directory)") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir / META}: unreadable ({exc})") from None
    weights = model_dir / WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{model_dir}: no {WEIGHTS}")
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelLoadError(f"{weights}: {weights.stat().st_size:,} bytes is over the {MAX_WEIGHTS_BYTES:,} limit")
    try:
        settings = settings_from_dict(meta["model"])
        q, z = np.asarray(meta["q"], float), np.asarray(meta["z"], float)
        normalizer = Normalizer.from_dict(meta["normalization"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir / META}: missing or bad field ({exc})") from None
    model = build_model(settings, q.size, z.size)
    try:
        state = torch.load(weights, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - pickle errors, shape mismatches: all mean "not these weights"
        raise ModelLoadError(f"{weights}: not weights of a {settings.arch} for {q.size} Q / {z.size} z points "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None
    model.eval()
    return model, meta, normalizer
