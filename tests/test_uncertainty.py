"""The uncertainty band of predicted profiles (ml.uncertainty): split conformal, per depth."""

import json

import numpy as np
import pytest
from test_history_app import trained_record

from reflect_core.ml.uncertainty import LEVELS, Band, BandError, band_of, calibrate
from reflect_core.store.records import record_dir

# A two-sided Gaussian interval holding 68 % (95 %) of the mass is ±0.9945σ (±1.96σ).
Z_68, Z_95 = 0.9945, 1.9600


def gaussian_errors(rng, n, sigma):
    truth = rng.normal(size=(n, sigma.size))
    return truth + rng.normal(size=(n, sigma.size)) * sigma, truth


def test_gaussian_errors_give_their_own_quantiles_and_the_promised_coverage():
    rng = np.random.default_rng(0)
    sigma = np.linspace(0.05, 0.5, 40)  # the error grows with depth, as a network's does
    band = calibrate(*gaussian_errors(rng, 4000, sigma), *gaussian_errors(rng, 4000, sigma))
    # 4000 calibration curves: the quantile's relative standard error is ~2 %, so 6 % is ~3σ.
    assert np.allclose(band.halfwidth[68], Z_68 * sigma, rtol=0.06)
    assert np.allclose(band.halfwidth[95], Z_95 * sigma, rtol=0.06)
    # Coverage over 160,000 independent test points: within ±1 % (binomial σ ≈ 0.1 %, quantile noise larger).
    assert band.coverage[68] == pytest.approx(0.68, abs=0.01) and band.coverage[95] == pytest.approx(0.95, abs=0.01)


def test_few_calibration_curves_take_the_largest_error_rather_than_promise_too_much():
    errors = np.arange(1.0, 6.0)[:, None]  # five validation curves, errors 1..5 at one depth
    band = calibrate(errors, np.zeros_like(errors), errors, np.zeros_like(errors))
    assert band.halfwidth[95][0] == 5.0  # ⌈6 × 0.95⌉ = 6 > 5: the largest
    assert band.halfwidth[68][0] == 5.0  # ⌈6 × 0.68⌉ = 5: the fifth smallest
    with pytest.raises(BandError, match="no validation curves"):
        calibrate(np.empty((0, 1)), np.empty((0, 1)), errors, errors)


def test_a_stored_band_is_checked_when_read():
    band = Band({68: np.full(3, 0.1), 95: np.full(3, 0.2)}, {68: 0.7, 95: 0.94}, 50)
    assert band_of({"band": json.loads(json.dumps(band.to_dict()))}, 3).halfwidth[95].tolist() == [0.2] * 3
    assert band_of({}, 3) is None and band_of(None, 3) is None  # a model from before bands
    for broken, says in (({**band.to_dict(), "halfwidth_68": [0.1, 0.1]}, "one finite, non-negative width"),
                         ({**band.to_dict(), "halfwidth_95": [0.1, -1, 0.1]}, "one finite, non-negative width"),
                         ({k: v for k, v in band.to_dict().items() if k != "n_calibration"}, "incomplete")):
        with pytest.raises(BandError, match=says):
            band_of({"band": broken}, 3)
    low, high = band.around(np.zeros(3), 68)
    assert low.tolist() == [-0.1] * 3 and high.tolist() == [0.1] * 3


def test_a_trained_model_keeps_its_band_and_the_command_line_writes_it(tmp_path, capsys):
    from reflect_core.cli import main
    from reflect_core.ml.meta import ModelMeta

    model_dir = record_dir(trained_record("banded", 2)) / "model"
    meta = ModelMeta.read(model_dir)
    band = band_of(meta.metrics, meta.z.size)
    assert band is not None and band.n_calibration > 0
    assert all(0 <= band.coverage[level] <= 1 for level in LEVELS)
    assert np.all(band.halfwidth[95] >= band.halfwidth[68])
    nr = np.stack([np.stack([meta.q, np.geomspace(1, 1e-6, meta.q.size)])] * 3)
    np.save(tmp_path / "nr.npy", nr)
    assert main(["predict", str(model_dir), "--nr", str(tmp_path / "nr.npy"), "--out", str(tmp_path / "p.npy"),
                 "--band", str(tmp_path / "band.npy")]) == 0
    profiles, bands = np.load(tmp_path / "p.npy"), np.load(tmp_path / "band.npy")
    assert bands.shape == (3, 5, meta.z.size) and np.array_equal(bands[:, 0], profiles[:, 0])
    assert np.all(bands[:, 1] <= profiles[:, 1] + 1e-6) and np.all(profiles[:, 1] <= bands[:, 2] + 1e-6)
    assert np.all(bands[:, 3] <= bands[:, 1] + 1e-6) and np.all(bands[:, 2] <= bands[:, 4] + 1e-6)  # 95 ⊇ 68
    assert "split conformal" in capsys.readouterr().err
    # A model without a band: said, nothing written.
    meta_file = model_dir / "model.json"
    raw = json.loads(meta_file.read_text())
    del raw["metrics"]["band"]
    meta_file.write_text(json.dumps(raw))
    assert main(["predict", str(model_dir), "--nr", str(tmp_path / "nr.npy"), "--out", str(tmp_path / "q.npy"),
                 "--band", str(tmp_path / "band2.npy")]) == 2
    assert "no uncertainty band" in capsys.readouterr().err and not (tmp_path / "band2.npy").exists()
