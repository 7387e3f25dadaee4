"""Plain verdicts from the numbers: is a trained model worth using, and does a predicted profile
explain a measured curve. Each verdict has a level (for its colour) and a sentence that gives
the numbers it rests on, so a user can check it.

Model (test set, against the mean-training-profile baseline): r = RMSE_model / RMSE_baseline.
With that baseline R² = 1 − r², so r ≥ 1 is no better than always answering the mean profile,
r ≥ 0.6 (R² ≤ 0.64) leaves most of the profile's variation unexplained, r ≤ 0.3 (R² ≥ 0.91)
explains nearly all of it.

Measured curve (reduced χ² with the best scale and background, ν = points − 2): for a profile
that explains the data within its error bars, χ²_red is 1 ± √(2/ν); above 1 + 3√(2/ν) the
difference is significant. Up to 10 the profile follows the data's shape (a refinement fit from
it is the next step); beyond that it does not explain the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

USELESS_RATIO = 1.0
WEAK_RATIO = 0.6
GOOD_RATIO = 0.3
ROUGH_CHI2 = 10.0


@dataclass(frozen=True)
class Verdict:
    level: str  # "good", "usable", "weak", "useless" (models); "consistent", "close", "inconsistent", "unknown"
    text: str

    @property
    def tone(self) -> str:
        """How a page colours it: success, info or warning. A bad verdict is a warning, not an error: the
        app did its work, the result is poor (red is kept for what failed)."""
        return {"good": "success", "consistent": "success", "usable": "info", "unknown": "info"}.get(self.level,
                                                                                                   "warning")


def model_verdict(metrics: dict | None) -> Verdict:
    """From a model's test metrics ({"model": {"rmse", "r2"}, "baseline": {"rmse"}})."""
    try:
        rmse, base = float(metrics["model"]["rmse"]), float(metrics["baseline"]["rmse"])
        r2 = float(metrics["model"]["r2"])
    except (KeyError, TypeError, ValueError):
        return Verdict("unknown", "No test metrics: this model's accuracy is unknown; judge it by its predictions.")
    if not (math.isfinite(rmse) and math.isfinite(base)) or base <= 0:
        return Verdict("unknown", "The test metrics are not finite: this model's accuracy is unknown.")
    ratio = rmse / base
    numbers = (f"test SLD RMSE {rmse:.3g} × 10⁻⁶ Å⁻², {ratio:.0%} of the baseline's {base:.3g} "
               f"(always answering the mean training profile), R² {r2:.2f}")
    if ratio >= USELESS_RATIO:
        return Verdict("useless", f"Worse than the baseline: do not use this model ({numbers}). Train longer, on "
                                  "more curves, or with a narrower prior.")
    if ratio >= WEAK_RATIO:
        return Verdict("weak", f"Barely better than the baseline: not reliable for analysis ({numbers}).")
    if ratio > GOOD_RATIO:
        return Verdict("usable", f"Usable: it explains most of the profiles' variation ({numbers}); check each "
                                 "prediction against its data.")
    return Verdict("good", f"Good: it explains nearly all of the profiles' variation ({numbers}).")


def fit_verdict(agreement: dict) -> Verdict:
    """From ``analysis.measured.agreement``: does the recomputed curve explain the measured one?"""
    chi2 = agreement.get("chi2_reduced_scaled")
    decades = agreement.get("median_decades")
    if chi2 is None:
        where = "the file has no dR column" if agreement.get("chi2_reduced") is None else "no positive scale fits"
        shape = f" The curves differ by a median {decades:.2f} decades." if decades is not None else ""
        return Verdict("unknown", f"Consistency with the data cannot be judged: {where}.{shape}")
    dof = max(int(agreement.get("points_with_dr") or agreement.get("points") or 0) - 2, 1)
    limit = 1 + 3 * math.sqrt(2 / dof)
    meaning = (f"reduced χ² {chi2:.3g} with scale {agreement['scale']:.3g} and background "
               f"{agreement['background']:.2e} fitted; χ² is the mean squared distance in units of the error "
               f"bars, ≈ 1 (here ≤ {limit:.2f} for {dof} degrees of freedom) when the curve explains the data")
    if chi2 <= limit:
        return Verdict("consistent", f"Consistent with the data within its error bars ({meaning}).")
    if chi2 <= ROUGH_CHI2:
        return Verdict("close", f"Follows the data but not within its error bars ({meaning}). A refinement fit "
                                "(Analyse page) starting from this profile is the next step.")
    return Verdict("inconsistent", f"Does not explain the data ({meaning}). The measurement may lie outside "
                                   "what the model was trained on; try a model trained for this curve.")
