"""Whether a measured curve lies among a model's training curves (analysis.prior_check)."""

import numpy as np

from reflect_core.analysis.prior_check import OUTSIDE_LIMIT, check_prior
from reflect_core.ml.builtin import builtin_models
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.predict import curves_on_model_grid
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.physics.simulate import CurveSettings, film_reflectivity
from reflect_core.uploads.curves import measured_curve

BUILTIN = builtin_models()[0].model_dir  # trained on the default prior, its settings kept in model.json


def on_model_grid(r_or_curve, meta):
    curve = r_or_curve
    return curves_on_model_grid(np.stack([np.stack([curve.q, curve.r])]), meta.q, meta.dq, resample=True).r[0]


def test_a_curve_of_the_models_own_prior_is_inside():
    meta = ModelMeta.read(BUILTIN)
    r = film_reflectivity(DEFAULT_FILM, meta.q, CurveSettings(dq=meta.dq, scale=1.0, background=0.0))
    check = check_prior(BUILTIN, r)
    assert check.outside_fraction == 0.0 and check.verdict.level == "consistent"


def test_a_curve_far_above_every_training_curve_is_called_extrapolation():
    meta = ModelMeta.read(BUILTIN)
    r = film_reflectivity(DEFAULT_FILM, meta.q, CurveSettings(dq=meta.dq, scale=1.0, background=1e-3))
    check = check_prior(BUILTIN, r)  # a 1e-3 floor: the prior's curves fall to ~1e-7 at high Q
    assert check.outside_fraction > OUTSIDE_LIMIT and check.verdict.level == "extrapolating"
    assert "extrapolating" in check.verdict.text and check.q_outside[1] == meta.q.max()


def test_the_real_measurement_is_outside_the_default_prior(shared_data_path):
    # REFL_212592 (a ~760 Å polymer film) is not a film of the default prior: the built-in model's χ² on it
    # is ~600, and the check says why rather than leaving the user to trust the profile.
    meta = ModelMeta.read(BUILTIN)
    curve, _ = measured_curve("REFL_212592.txt", shared_data_path.read_bytes(), ".txt")
    check = check_prior(BUILTIN, on_model_grid(curve, meta))
    assert check.outside_fraction > 0.3 and check.verdict.level == "extrapolating"


def test_a_model_without_dataset_settings_cannot_be_checked_and_says_so(tmp_path):
    import shutil

    copy = tmp_path / "imported"
    shutil.copytree(BUILTIN, copy)
    meta = ModelMeta.read(copy)
    import dataclasses

    dataclasses.replace(meta, dataset=None, prior=None).write(copy)  # as imported pyreflect weights are
    check = check_prior(copy, np.ones(meta.q.size))
    assert check.outside_fraction is None and check.verdict.level == "unknown"
    assert "imported weights" in check.verdict.text
