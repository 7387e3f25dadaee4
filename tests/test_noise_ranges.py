"""Measurement-like noise on synthetic curves: counting noise, background and scale error from ranges."""

import numpy as np
import pytest

from reflect_core.data.generate import DatasetError, Noise, noise_from_dict

R = np.geomspace(1.0, 1e-7, 200)[None].repeat(400, axis=0)  # 400 curves falling over seven decades


def test_fixed_values_give_exactly_the_former_poisson_draws():
    noise = Noise(counts_at_unity=(1e6, 1e6), background=(1e-6, 1e-6))
    expected = np.random.default_rng(3).poisson((R + 1e-6) * 1e6) / 1e6  # the formula before the ranges
    assert np.array_equal(noise.apply(R, np.random.default_rng(3)), expected)


def test_a_scale_range_scales_each_whole_curve_within_it():
    # N₀ = 1e15: counting noise below 1e-4 relative even at R = 1e-7, so what is left is the scale.
    noise = Noise(counts_at_unity=(1e15, 1e15), scale=(0.9, 1.1))
    ratio = noise.apply(R, np.random.default_rng(0)) / R
    per_curve = ratio.mean(axis=1)
    assert np.all(np.abs(ratio - per_curve[:, None]) < 1e-3)  # one factor per curve, across all Q
    assert 0.9 <= per_curve.min() < 0.91 and 1.09 < per_curve.max() <= 1.1  # the whole range is used


def test_counts_and_background_are_drawn_log_uniformly_per_curve():
    noise = Noise(counts_at_unity=(1e15, 1e15), background=(1e-7, 1e-5))
    floor = noise.apply(R, np.random.default_rng(1))[:, -1] - R[:, -1]  # at R = 1e-7: the background itself
    assert 1e-7 <= floor.min() and floor.max() <= 1e-5
    assert np.median(floor) == pytest.approx(1e-6, rel=0.25)  # log-uniform: the geometric mean is the median
    # At R = 1 the relative error is Gaussian with variance 1/N₀: one N₀ for all gives a kurtosis of 3; N₀ drawn
    # log-uniformly over four decades gives a scale mixture with kurtosis 3·ln(10⁴)/2 ≈ 14.
    ones = np.ones((20_000, 1))
    for counts, low, high in (((1e5, 1e5), 2.5, 3.5), ((1e3, 1e7), 8.0, 25.0)):
        error = Noise(counts_at_unity=counts).apply(ones, np.random.default_rng(4))[:, 0] - 1
        kurtosis = np.mean(error**4) / np.mean(error**2) ** 2
        assert low < kurtosis < high, (counts, kurtosis)


def test_settings_round_trip_and_fixed_values_stay_numbers():
    for noise in (Noise(), Noise((1e4, 1e6), (0.0, 2e-6), (0.95, 1.05)), Noise((3e6, 3e6), (2e-7, 2e-7))):
        assert noise_from_dict(noise.to_dict()) == noise
    assert Noise((3e6, 3e6), (2e-7, 2e-7)).to_dict() == {"counts_at_unity": 3e6, "background": 2e-7}
    assert noise_from_dict({"counts_at_unity": 3e6, "background": 2e-7}) == Noise((3e6, 3e6), (2e-7, 2e-7))


@pytest.mark.parametrize("noise, says", [
    ({"counts_at_unity": [1e6, 1e4]}, "counts_at_unity: needs 0 < lo ≤ hi"),
    ({"counts_at_unity": 0}, "counts_at_unity: needs 0 < lo"),
    ({"background": [-1e-7, 1e-6]}, "background: needs 0 ≤ lo ≤ hi ≤ 1"),
    ({"scale": [0.4, 1.0]}, "scale: needs 0.5 < lo ≤ hi ≤ 1.5"),
    ({"scale": [1.0, 1.0, 1.1]}, "expected a number or [lo, hi]"),
    ({"background": True}, "expected a number or [lo, hi]"),
    ({"counts_at_unity": [float("nan"), 1e6]}, "counts_at_unity: needs"),
    ({"gain": 2}, "expected {counts_at_unity, background[, scale]}"),
])
def test_bad_settings_are_refused_naming_the_field(noise, says):
    with pytest.raises(DatasetError) as caught:
        noise_from_dict(noise)
    assert says in str(caught.value), str(caught.value)
