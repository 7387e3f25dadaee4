"""A measured curve's counting level and background (formats.curves.noise_level), checked on curves
made with the training data's own noise model: counts ~ Poisson((R + b)·N₀), R = counts/N₀, dR = √counts/N₀."""

import numpy as np
import pytest

from reflect_core.formats.curves import Curve, noise_level


def counted(n0, background, seed=0):
    rng = np.random.default_rng(seed)
    q = np.geomspace(0.01, 0.3, 400)
    r_true = 1e-2 * (0.01 / q) ** 4  # Fresnel-like decay: 1e-2 at the start, ~1e-8 at the end
    counts = rng.poisson((r_true + background) * n0).astype(float)
    keep = counts > 0
    return Curve(q=q[keep], r=counts[keep] / n0, dr=np.sqrt(counts[keep]) / n0)


@pytest.mark.parametrize(("n0", "background"), [(1e6, 1e-6), (1e8, 5e-7), (1e7, 2e-6)])
def test_the_counting_level_and_background_come_back(n0, background):
    level = noise_level(counted(n0, background))
    # R/dR² = counts/n0 / (counts/n0²) = n0 exactly at every point: only the floor's noise is left.
    assert level["counts_at_unity"] == pytest.approx(n0, rel=1e-9)
    # The floor: the last tenth's R is the background plus the true R there (1.2e-8 to 4.7e-8, under
    # 10 % of each background here), with Poisson noise √(b·N₀)/N₀ per point, ~1/√40 of it in a median
    # of 40 points: 30 % holds the bias and the noise together.
    assert level["background"] == pytest.approx(background, rel=0.3)


def test_no_error_bars_no_estimate_and_an_oversubtracted_floor_is_zero():
    q = np.geomspace(0.01, 0.3, 50)
    assert noise_level(Curve(q=q, r=1e-3 / q)) is None
    r = np.where(q > 0.25, -1e-7, 1e-4 / q)  # background subtracted too far: negative R at high Q
    assert noise_level(Curve(q=q, r=r, dr=np.abs(r) / 10))["background"] == 0.0
