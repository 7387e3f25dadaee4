"""An uncertainty band for every predicted profile: split conformal prediction, per depth z.

At the end of training the network predicts the validation curves (never trained on; used only to
pick the best epoch). At every z, the band's half-width for level p is the ⌈(n+1)·p⌉-th smallest
of the n values |predicted − true SLD| there: split conformal prediction's finite-sample rule, which
makes a band cover at least a share p of the true profile's points at that depth for a new curve
drawn like the validation ones. The coverage is then measured on the test split (held out from both
training and calibration) and kept beside the band in the model's metrics.

Why this method: it is calibrated by construction with a guarantee that can be said plainly; it
needs no change to the network and no extra passes per prediction (every architecture, the GPU
ones too); and it adds two numbers per z to model.json. What it does not do: its width depends on
the depth, not on the curve, and the guarantee holds only for curves like the training ones, which
is what ``analysis.prior_check`` tells for a measured curve. MC dropout (30 passes per prediction)
or an ensemble (N trainings) would give per-curve widths; both still need this calibration step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVELS = (68, 95)  # percent


class BandError(ValueError):
    pass


@dataclass(frozen=True)
class Band:
    halfwidth: dict[int, np.ndarray]  # level (%) → (M,) half-width in 10⁻⁶ Å⁻², per z of the model's grid
    coverage: dict[int, float]  # level → share of the test split's profile points inside the band
    n_calibration: int  # validation curves it was calibrated on

    def around(self, sld: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) profiles of the band around ``sld`` (the model's z grid)."""
        return sld - self.halfwidth[level], sld + self.halfwidth[level]

    def bounds(self, sld: np.ndarray) -> dict[str, np.ndarray]:
        """lo68, hi68, lo95, hi95 around ``sld``: the form figures and saved analyses take."""
        return {f"{side}{level}": bound for level in LEVELS
                for side, bound in zip(("lo", "hi"), self.around(np.asarray(sld, float), level))}

    def describe(self) -> str:
        return ("Uncertainty band (split conformal, calibrated on "
                f"{self.n_calibration:,} validation curves): " + "; ".join(
                    f"the {level} % band covers {100 * self.coverage[level]:.0f} % of the test profiles' points"
                    for level in LEVELS) + ". It holds for curves like the training ones.")

    def to_dict(self) -> dict:
        return {"method": "split conformal, per z", "n_calibration": self.n_calibration,
                **{f"halfwidth_{level}": self.halfwidth[level].tolist() for level in LEVELS},
                **{f"test_coverage_{level}": self.coverage[level] for level in LEVELS}}

    @classmethod
    def from_dict(cls, raw, n_z: int) -> Band:
        """A stored band, checked: one finite, non-negative half-width per z for each level."""
        try:
            halfwidth = {level: np.asarray(raw[f"halfwidth_{level}"], dtype=float) for level in LEVELS}
            coverage = {level: float(raw[f"test_coverage_{level}"]) for level in LEVELS}
            n = int(raw["n_calibration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BandError(f"the stored uncertainty band is incomplete ({exc})") from None
        for level, width in halfwidth.items():
            if width.shape != (n_z,) or not np.all(np.isfinite(width)) or np.any(width < 0):
                raise BandError(f"the stored {level} % band does not have one finite, non-negative width per z "
                                f"({n_z} points)")
        return cls(halfwidth, coverage, n)


def _conformal_quantile(errors: np.ndarray, level: int) -> np.ndarray:
    """Per column, the ⌈(n+1)·p⌉-th smallest of the n errors (the largest when n is too small for p)."""
    n = len(errors)
    rank = min(math.ceil((n + 1) * level / 100), n)
    return np.sort(errors, axis=0)[rank - 1]


def calibrate(pred_val: np.ndarray, true_val: np.ndarray, pred_test: np.ndarray, true_test: np.ndarray) -> Band:
    """The band from validation predictions (N, M) and its coverage on the test ones."""
    if len(pred_val) == 0:
        raise BandError("no validation curves to calibrate a band on")
    errors = np.abs(np.asarray(pred_val, float) - np.asarray(true_val, float))
    halfwidth = {level: _conformal_quantile(errors, level) for level in LEVELS}
    test_errors = np.abs(np.asarray(pred_test, float) - np.asarray(true_test, float))
    coverage = {level: float(np.mean(test_errors <= halfwidth[level])) if test_errors.size else float("nan")
                for level in LEVELS}
    return Band(halfwidth, coverage, len(errors))


def band_of(metrics: dict | None, n_z: int) -> Band | None:
    """A model's band from its metrics; None for a model trained before bands (or imported)."""
    raw = (metrics or {}).get("band")
    return None if raw is None else Band.from_dict(raw, n_z)
