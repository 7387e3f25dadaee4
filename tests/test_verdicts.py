"""Verdicts from the numbers (reflect_core.analysis.verdicts): the thresholds follow from
R² = 1 − (RMSE/RMSE_baseline)² and from the spread of χ²_red, √(2/ν), for a consistent fit."""

import math

import numpy as np
import pytest

from reflect_core.analysis.measured import agreement
from reflect_core.analysis.verdicts import fit_verdict, model_verdict
from reflect_core.formats.curves import Curve


def metrics(rmse, base=0.5):
    ratio = rmse / base
    return {"model": {"rmse": rmse, "r2": 1 - ratio**2}, "baseline": {"rmse": base}}


@pytest.mark.parametrize(("rmse", "level", "tone", "words"), [
    (0.58, "useless", "warning", "Worse than the baseline"),   # the run: 116 % of the baseline, R² −0.35
    (0.5, "useless", "warning", "do not use"),
    (0.35, "weak", "warning", "Barely better"),
    (0.2, "usable", "info", "Usable"),
    (0.13, "good", "success", "Good"),                       # the default recipe: 26 % of the baseline
])
def test_model_verdicts_follow_the_ratio_to_the_baseline(rmse, level, tone, words):
    verdict = model_verdict(metrics(rmse))
    assert (verdict.level, verdict.tone) == (level, tone) and words in verdict.text
    assert f"{rmse / 0.5:.0%} of the baseline" in verdict.text and "R²" in verdict.text


def test_a_model_without_metrics_is_unknown_not_good():
    for bad in (None, {}, {"model": {"rmse": float("nan"), "r2": 0}, "baseline": {"rmse": 0.5}},
                {"model": {"rmse": 0.1, "r2": 0.9}, "baseline": {"rmse": 0}}):
        assert model_verdict(bad).level == "unknown"


def curve_with_noise(rng, r_true, relative_error):
    dr = relative_error * r_true
    return Curve(q=np.linspace(0.01, 0.2, r_true.size), r=r_true + rng.normal(0, 1, r_true.size) * dr, dr=dr)


def test_fit_verdicts_from_chi2_with_fitted_scale_and_background():
    rng = np.random.default_rng(3)
    r_true = np.geomspace(1, 1e-6, 200)
    data = curve_with_noise(rng, r_true, 0.05)
    # The true curve scaled by 0.9 with a background: the fitted scale and background take both out.
    consistent = fit_verdict(agreement(data, (r_true - 1e-7) / 0.9))
    assert consistent.level == "consistent" and "within its error bars" in consistent.text
    assert "198 degrees of freedom" in consistent.text and f"≤ {1 + 3 * math.sqrt(2 / 198):.2f}" in consistent.text
    close = fit_verdict(agreement(data, r_true * (1 + 0.1 * np.sin(np.arange(200) / 5))))  # 2 error bars off
    assert close.level == "close" and "refinement fit" in close.text
    far = fit_verdict(agreement(data, r_true * np.exp(np.sin(np.arange(200) / 3))))
    assert far.level == "inconsistent" and far.tone == "warning"


def test_no_error_bars_means_no_verdict_on_consistency():
    data = Curve(q=np.linspace(0.01, 0.2, 50), r=np.geomspace(1, 1e-5, 50))
    verdict = fit_verdict(agreement(data, data.r * 2))
    assert verdict.level == "unknown" and "no dR column" in verdict.text and "0.30 decades" in verdict.text


def test_every_verdict_level_made_anywhere_has_an_icon_and_a_tone():
    # A level without an icon crashed the Predict tab once ("extrapolating"): every Verdict("level", ...)
    # written in the library must be one the page can draw.
    import re

    from conftest import ROOT

    from ui.verdict import ICONS

    made = {level for path in (ROOT / "reflect_core").rglob("*.py")
            for level in re.findall(r'Verdict\("([a-z]+)"', path.read_text(encoding="utf-8"))}
    assert made and made <= set(ICONS), made - set(ICONS)
