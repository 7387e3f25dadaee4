"""Apply a saved model to NR curves: the Q grid must be the model's, or resampled on request."""

from __future__ import annotations

import numpy as np
import torch

from reflect_core.ml.model_store import load_model
from reflect_core.base.errors import InvalidInput


class PredictError(InvalidInput):
    """Curves a model cannot take; the message says why and what to do."""


def _describe(q: np.ndarray) -> str:
    return f"{q.size} points, {q.min():.4g}–{q.max():.4g} Å⁻¹"


def curves_on_model_grid(nr: np.ndarray, q_model: np.ndarray, resample: bool) -> np.ndarray:
    """R values (N, L_model) from curves (N, 2, L) in pyreflect format."""
    if nr.ndim != 3 or nr.shape[1] != 2:
        raise PredictError(f"curves must have shape (N, 2, L) with rows [Q, R], got {nr.shape}")
    if not np.all(np.isfinite(nr)):
        raise PredictError("curves contain NaN or inf")
    same_grid = nr.shape[2] == q_model.size and np.allclose(nr[:, 0], q_model, rtol=1e-5, atol=0)
    if same_grid:
        return nr[:, 1]
    if not resample:
        raise PredictError(
            f"the curves' Q grid ({_describe(nr[0, 0])}) is not the model's ({_describe(q_model)}); "
            "the network only knows its own grid. Ask to resample (--resample) to interpolate log R onto it."
        )
    out = np.empty((len(nr), q_model.size))
    for i, (q, r) in enumerate(nr):
        order = np.argsort(q)
        q, r = q[order], r[order]
        if q[0] > q_model[0] * (1 + 1e-6) or q[-1] < q_model[-1] * (1 - 1e-6):
            raise PredictError(f"curve {i} covers {q[0]:.4g}–{q[-1]:.4g} Å⁻¹ but the model needs "
                               f"{q_model[0]:.4g}–{q_model[-1]:.4g} Å⁻¹: resampling would extrapolate")
        log_r = np.log10(np.clip(r, 1e-12, None))
        out[i] = 10 ** np.interp(q_model, q, log_r)
    return out


def predict(model_dir, nr: np.ndarray, resample: bool = False) -> np.ndarray:
    """SLD profiles (N, 2, M) [z, SLD in 10⁻⁶ Å⁻²] for curves (N, 2, L)."""
    model, meta, normalizer = load_model(model_dir)
    r = curves_on_model_grid(np.asarray(nr, dtype=float), np.asarray(meta["q"]), resample)
    with torch.no_grad():
        x = torch.from_numpy(normalizer.nr(r))
        sld = normalizer.sld_back(torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)]).numpy())
    z = np.asarray(meta["z"], dtype=np.float32)
    out = np.empty((len(sld), 2, z.size), np.float32)
    out[:, 0], out[:, 1] = z, sld
    return out
