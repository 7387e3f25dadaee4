"""model.json through ModelMeta (schema, migration of older files, field checks), and curves
brought onto a model's Q grid with tolerances in units of the resolution."""

import json

import numpy as np
import pytest

from reflect_core.formats.curves import read_curve
from reflect_core.ml.meta import SCHEMA, ModelLoadError, ModelMeta
from reflect_core.ml.predict import PredictError, curves_on_model_grid
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import ModelSettings
from reflect_core.physics.simulate import PYREFLECT_DQ, PYREFLECT_NQ, PYREFLECT_QMAX, PYREFLECT_QMIN

PYREFLECT_Q = np.geomspace(PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ)
NORMALIZER = Normalizer(log_r_min=-8.0, log_r_max=0.0, sld_min=-0.5, sld_max=6.4, q_min=PYREFLECT_QMIN,
                        q_max=PYREFLECT_QMAX, z_min=-30.0, z_max=700.0)
# What the pipeline wrote before schema 2: no schema, no source, and beam_from absent.
V1 = {"model": {"arch": "compact_cnn", "layers": 2, "channels": 8, "hidden": 32, "dropout": 0.05},
      "training": {"epochs": 3}, "q": [0.01, 0.02, 0.05], "z": [0.0, 10.0, 20.0, 30.0], "dq": 0.03,
      "normalization": NORMALIZER.to_dict(), "metrics": {"model": {"rmse": 0.2, "r2": 0.8}, "baseline": {"rmse": 0.5}},
      "history": {"train": [1.0, 0.5], "val": [1.1, 0.6]}, "best_epoch": 2, "parameters": 1234,
      "test_index": [0, 3], "prior": None, "dataset": {"n": 10}, "data_folder": None}


def test_a_schema_1_file_is_migrated_and_written_back_in_schema_2(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(V1))
    meta = ModelMeta.read(tmp_path)
    assert (meta.beam_from, meta.source, meta.parameters, meta.best_epoch) == ("ambient", {"kind": "training"}, 1234, 2)
    assert meta.summary() == {"rmse": 0.2, "baseline_rmse": 0.5, "r2": 0.8, "nr_decades": None, "parameters": 1234}
    meta.write(tmp_path)
    written = json.loads((tmp_path / "model.json").read_text())
    assert written["schema"] == SCHEMA and written["beam_from"] == "ambient"
    assert ModelMeta.read(tmp_path).to_dict() == written  # a round trip changes nothing


def test_a_new_model_round_trips(tmp_path):
    meta = ModelMeta(model=ModelSettings(), q=PYREFLECT_Q, z=np.linspace(0, 500, 900), dq=PYREFLECT_DQ,
                     normalization=NORMALIZER, beam_from="substrate", source={"kind": "pyreflect import"})
    meta.write(tmp_path)
    again = ModelMeta.read(tmp_path)
    assert again.to_dict() == meta.to_dict() and again.beam_from == "substrate" and again.training is None


@pytest.mark.parametrize("change, message", [
    ({"q": [0.01]}, "'q' must be a list of at least 2"),
    ({"q": [0.0, 0.1]}, "Q values must be > 0"),
    ({"z": [0.0, float("nan")]}, "'z' must be a list"),
    ({"dq": 0.7}, "dq must be a FWHM fraction"),
    ({"beam_from": "sideways"}, "beam_from must be one of"),
    ({"normalization": {**NORMALIZER.to_dict(), "sld_max": -1.0}}, "above their minima"),
    ({"model": {"arch": "transformer"}}, "model.arch"),
    ({"schema": 99}, "newer than this app reads"),
])
def test_bad_fields_are_named(tmp_path, change, message):
    (tmp_path / "model.json").write_text(json.dumps({**V1, **change}))
    with pytest.raises(ModelLoadError, match=message):
        ModelMeta.read(tmp_path)


def test_a_missing_field_and_a_missing_file_are_named(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({k: v for k, v in V1.items() if k != "normalization"}))
    with pytest.raises(ModelLoadError, match="lacks the field 'normalization'"):
        ModelMeta.read(tmp_path)
    with pytest.raises(ModelLoadError, match="not a model directory"):
        ModelMeta.read(tmp_path / "elsewhere")


def curve_set(q, r=None):
    r = np.full_like(q, 1e-3) if r is None else r
    return np.stack([np.stack([q, r])])


def test_pyreflects_written_grid_is_the_same_grid_as_its_nominal_one():
    """pyreflect's generator writes 0.0081014–0.19757 Å⁻¹; its nominal grid is 0.0081–0.1975.
    The largest shift (2e-5 relative) is far below a tenth of the resolution σ (1.25e-3 relative)."""
    nominal = np.geomspace(0.0081, 0.1975, 308)
    matched = curves_on_model_grid(curve_set(nominal), PYREFLECT_Q, PYREFLECT_DQ, resample=False)
    assert matched.notes == () and matched.r.shape == (1, 308)
    shifted = curve_set(nominal * 1.01)  # 1 %: almost one σ, a different grid
    with pytest.raises(PredictError, match="not the model's"):
        curves_on_model_grid(shifted, PYREFLECT_Q, PYREFLECT_DQ, resample=False)


def test_a_measured_curve_is_cropped_and_padded_within_two_resolution_widths(shared_data_path):
    """REFL_212592 runs 0.008347–0.269 Å⁻¹: its low end misses the default grid by 0.00025 Å⁻¹
    (about one FWHM of dQ/Q = 2.95 %), and its points above 0.1976 Å⁻¹ are not read."""
    curve = read_curve(shared_data_path).sorted()
    matched = curves_on_model_grid(curve_set(curve.q, np.clip(curve.r, 1e-12, None)), PYREFLECT_Q, PYREFLECT_DQ,
                                   resample=True)
    assert np.all(np.isfinite(matched.r)) and matched.r.shape == (1, 308)
    padded, cropped = matched.notes
    assert padded.startswith("the curve padded 0.0081014–0.0083469 Å⁻¹ (3 model points, 1.03 resolution FWHM)")
    above = int(np.sum(curve.q > PYREFLECT_QMAX))
    assert cropped == f"the curve cropped {above} points above 0.19757 Å⁻¹ (outside the model's range)"
    assert not any("curve 0" in note for note in matched.notes)


def test_a_gap_wider_than_two_resolution_widths_is_refused():
    q = np.geomspace(0.0081 * (1 + 2.5 * PYREFLECT_DQ), 0.2, 200)  # 2.5 FWHM short at the low end
    with pytest.raises(PredictError, match="the curve covers .* more than 2 resolution widths"):
        curves_on_model_grid(curve_set(q), PYREFLECT_Q, PYREFLECT_DQ, resample=True)
    two = np.concatenate([curve_set(np.geomspace(0.008, 0.2, 200))] * 2)
    two[1, 0] = np.geomspace(0.02, 0.2, 200)
    with pytest.raises(PredictError, match="^curve 1: covers"):
        curves_on_model_grid(two, PYREFLECT_Q, PYREFLECT_DQ, resample=True)
