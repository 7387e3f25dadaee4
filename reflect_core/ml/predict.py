"""Apply a saved model to NR curves: the Q grid must be the model's, or resampled on request.

"Same grid" and "would extrapolate" are judged in units of the instrument resolution
(DESIGN.md): a shift far below dQ is the same grid, and a gap at either end of the
model's range up to ``PAD_FWHM`` resolution widths is bridged by holding log R at the
curve's end value (nothing beyond one or two resolution widths can be resolved anyway).
Curve points outside the model's range are cropped: the network never reads them.
Every crop and pad is reported in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import load_model
from reflect_core.physics.resolution import FWHM_TO_SIGMA

if TYPE_CHECKING:
    import torch

SAME_GRID_SIGMA = 0.1  # every point within 0.1 σ of the model's is the same grid
PAD_FWHM = 2.0  # a gap of up to two resolution FWHM at an end is padded, a wider one refused
LOG_R_FLOOR = 1e-12


class PredictError(InvalidInput):
    """Curves a model cannot take; the message says why and what to do."""


@dataclass(frozen=True)
class GridMatch:
    r: np.ndarray  # (N, L_model) reflectivity on the model's Q grid
    notes: tuple[str, ...]  # what was cropped or padded, in words (empty when nothing was)


def _describe(q: np.ndarray) -> str:
    return f"{q.size} points, {q.min():.4g}–{q.max():.4g} Å⁻¹"


def _fwhm(q_model: np.ndarray, dq: float) -> np.ndarray:
    """The model's resolution FWHM at each of its points, Å⁻¹ (a floor of 0.1 % of Q for dq = 0)."""
    return np.maximum(dq, 1e-3) * q_model


def _on_grid(q_curve: np.ndarray, r: np.ndarray, q_model: np.ndarray, fwhm: np.ndarray, label: str):
    """(R on the model grid, notes) for one curve, sorted by Q."""
    pad = PAD_FWHM * fwhm[[0, -1]]
    low_gap, high_gap = q_curve[0] - q_model[0], q_model[-1] - q_curve[-1]
    if low_gap > pad[0] or high_gap > pad[1]:
        raise PredictError(
            f"{label}covers {q_curve[0]:.5g}–{q_curve[-1]:.5g} Å⁻¹ but the model needs {q_model[0]:.5g}–"
            f"{q_model[-1]:.5g} Å⁻¹: resampling would extrapolate by more than {PAD_FWHM:g} resolution widths "
            f"(FWHM {fwhm[0]:.2g} Å⁻¹ at the low end, {fwhm[-1]:.2g} Å⁻¹ at the high end)")
    notes = []
    if low_gap > 0:
        n = int(np.sum(q_model < q_curve[0]))
        notes.append(f"{label}padded {q_model[0]:.5g}–{q_curve[0]:.5g} Å⁻¹ ({n} model points, "
                     f"{low_gap / fwhm[0]:.2f} resolution FWHM) with its first R value")
    if high_gap > 0:
        n = int(np.sum(q_model > q_curve[-1]))
        notes.append(f"{label}padded {q_curve[-1]:.5g}–{q_model[-1]:.5g} Å⁻¹ ({n} model points, "
                     f"{high_gap / fwhm[-1]:.2f} resolution FWHM) with its last R value")
    for name, outside in (("below", q_curve < q_model[0]), ("above", q_curve > q_model[-1])):
        if outside.any():
            edge = q_model[0] if name == "below" else q_model[-1]
            notes.append(f"{label}cropped {int(outside.sum())} points {name} {edge:.5g} Å⁻¹ "
                         "(outside the model's range)")
    log_r = np.log10(np.clip(r, LOG_R_FLOOR, None))
    return 10 ** np.interp(q_model, q_curve, log_r), notes  # np.interp holds the end values outside


def curves_on_model_grid(nr: np.ndarray, q_model: np.ndarray, dq: float, resample: bool) -> GridMatch:
    """R values (N, L_model) from curves (N, 2, L) in pyreflect format; ``dq`` is the model's
    resolution (FWHM fraction), the unit of every tolerance here."""
    if nr.ndim != 3 or nr.shape[1] != 2:
        raise PredictError(f"curves must have shape (N, 2, L) with rows [Q, R], got {nr.shape}")
    if not np.all(np.isfinite(nr)):
        raise PredictError("curves contain NaN or inf")
    fwhm = _fwhm(q_model, dq)
    tolerance = SAME_GRID_SIGMA * fwhm * FWHM_TO_SIGMA
    if nr.shape[2] == q_model.size and np.all(np.abs(nr[:, 0] - q_model) <= tolerance):
        return GridMatch(nr[:, 1], ())
    if not resample:
        raise PredictError(
            f"the curves' Q grid ({_describe(nr[0, 0])}) is not the model's ({_describe(q_model)}); "
            "the network only knows its own grid. Ask to resample (--resample) to interpolate log R onto it.")
    out, notes = np.empty((len(nr), q_model.size)), []
    for i, (q, r) in enumerate(nr):
        order = np.argsort(q, kind="stable")
        label = f"curve {i}: " if len(nr) > 1 else "the curve "
        out[i], said = _on_grid(q[order], r[order], q_model, fwhm, label)
        notes.extend(said)
    return GridMatch(out, tuple(notes))


def apply_model(model: torch.nn.Module, meta: ModelMeta, r: np.ndarray) -> np.ndarray:
    """SLD profiles (N, 2, M) [z, SLD in 10⁻⁶ Å⁻²] of R values on the model's grid (N, L)."""
    import torch  # here: pages import this module for PredictError and grid checks, without running a model

    normalizer = meta.normalization
    with torch.no_grad():
        x = torch.from_numpy(normalizer.nr(r))
        sld = normalizer.sld_back(torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)]).numpy())
    z = meta.z.astype(np.float32)
    out = np.empty((len(sld), 2, z.size), np.float32)
    out[:, 0], out[:, 1] = z, sld
    return out


def predict(model_dir, nr: np.ndarray, resample: bool = False) -> np.ndarray:
    """SLD profiles (N, 2, M) [z, SLD in 10⁻⁶ Å⁻²] for curves (N, 2, L)."""
    model, meta = load_model(model_dir)
    return apply_model(model, meta, curves_on_model_grid(np.asarray(nr, dtype=float), meta.q, meta.dq, resample).r)
