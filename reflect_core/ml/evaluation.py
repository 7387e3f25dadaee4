"""Test-set metrics of a trained model, always next to the mean-profile baseline."""

from __future__ import annotations

import numpy as np

from reflect_core.physics.film import flip_stack
from reflect_core.physics.profile import microslab_stacks
from reflect_core.physics.reflectivity import reflectivity

MAX_RECOMPUTED = 200  # NR recomputation costs ~30 ms per curve (900 microslabs)
LOG_FLOOR = 1e-10


def profile_metrics(pred: np.ndarray, true: np.ndarray, reference: np.ndarray) -> dict:
    """RMSE and MAE in 10⁻⁶ Å⁻² on the common z grid, and R² against ``reference``
    (the mean training profile, so the baseline scores R² ≈ 0)."""
    err = pred - true
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((true - reference) ** 2))
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")}


def recomputed_nr(z: np.ndarray, sld: np.ndarray, q: np.ndarray, dq: float, beam_from: str,
                  dq_abs: np.ndarray | None = None) -> np.ndarray:
    """R(Q) of each profile with the data's resolution (microslabs on z): dQ/Q ``dq``,
    or a per-point FWHM ``dq_abs`` in Å⁻¹ (a measured file's own dQ column)."""
    stacks = microslab_stacks(z, sld)
    if beam_from == "substrate":
        stacks = flip_stack(stacks)
    return reflectivity(stacks, q, dq, dq_abs=dq_abs)


def nr_decades(r_model: np.ndarray, r_data: np.ndarray) -> np.ndarray:
    """Mean |Δ log10 R| per curve, both floored at 1e-10 (deep noise is not signal)."""
    diff = np.log10(np.clip(r_model, LOG_FLOOR, None)) - np.log10(np.clip(r_data, LOG_FLOOR, None))
    return np.mean(np.abs(diff), axis=-1)


def evaluate(pred_sld, true_sld, train_mean, nmse, nr_data, q, z, dq, beam_from="ambient") -> dict:
    """All test metrics for the model and for the baseline (mean training profile)."""
    baseline = np.broadcast_to(train_mean, true_sld.shape)
    k = min(len(pred_sld), MAX_RECOMPUTED)
    model_dec = nr_decades(recomputed_nr(z, pred_sld[:k], q, dq, beam_from), nr_data[:k])
    base_dec = nr_decades(recomputed_nr(z, train_mean[None], q, dq, beam_from), nr_data[:k])
    return {
        "n_test": int(len(true_sld)),
        "normalized_mse": float(nmse),
        "model": {**profile_metrics(pred_sld, true_sld, baseline),
                  "nr_decades_median": float(np.median(model_dec))},
        "baseline": {"name": "mean training profile", **profile_metrics(baseline, true_sld, baseline),
                     "nr_decades_median": float(np.median(base_dec))},
        "nr_recomputed_curves": int(k),
    }
