"""A saved model is a directory: ``model.pt`` (state dict) + ``model.json`` (``ModelMeta``:
architecture, Q grid, resolution, z grid, normalisation, prior, metrics, versions).
Loading never unpickles: ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reflect_core.base.storage import shown_path
from reflect_core.ml.meta import META, ModelLoadError, ModelMeta

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_WEIGHTS_BYTES", "META", "WEIGHTS", "ModelLoadError", "load_model", "save_model"]

WEIGHTS = "model.pt"
MAX_WEIGHTS_BYTES = 1_000_000_000


def save_model(out_dir, model: torch.nn.Module, meta: ModelMeta) -> Path:
    import torch  # here, not above: WEIGHTS is read by pages that must not load torch (~200 MB)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / WEIGHTS)
    meta.write(out_dir)
    return out_dir


def load_model(model_dir) -> tuple[torch.nn.Module, ModelMeta]:
    """(model in eval mode, its metadata)."""
    import torch

    from reflect_core.ml.models import build_model

    model_dir = Path(model_dir)
    meta = ModelMeta.read(model_dir)
    weights = model_dir / WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{shown_path(model_dir)}: no {WEIGHTS}")
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelLoadError(f"{shown_path(weights)}: {weights.stat().st_size:,} bytes is over the "
                             f"{MAX_WEIGHTS_BYTES:,} limit")
    model = build_model(meta.model, meta.q.size, meta.z.size)
    try:
        state = torch.load(weights, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - pickle errors, shape mismatches: all mean "not these weights"
        raise ModelLoadError(f"{shown_path(weights)}: not weights of a {meta.model.arch} for {meta.q.size} Q / "
                             f"{meta.z.size} z points ({type(exc).__name__}: {str(exc)[:200]})") from None
    model.eval()
    return model, meta
