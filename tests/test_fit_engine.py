"""run_fit (reflect_core.analysis.fit): refnx fits of synthetic curves made with our own
reflectivity() plus Gaussian noise of known dR, so the truth is known and the noise honest.

Tolerances: a fit is judged by its own error bars (|fit − truth| < 3σ: for a handful of
parameters with Gaussian errors the chance that one misses is ~1 %, and the seeds are fixed)
and by χ²_red against the χ² distribution with ν = N − p degrees of freedom (mean 1, standard
deviation √(2/ν); we allow 4 standard deviations). The model (refnx's pointwise smearing) and
the data (our convolution) differ by < 1 % of R (test below), a fifth of the 5 % noise or less,
which adds at most (0.2)² = 0.04 to χ²_red where it is largest, and far less on average.
"""

import json

import numpy as np
import pytest

from reflect_core.analysis.fit import FitConfig, FitResult, chi2_reduced, run_fit
from reflect_core.analysis.fit.datasets import prepare
from reflect_core.analysis.fit.model import FitModel
from reflect_core.base.errors import InvalidInput
from reflect_core.base.job_protocol import Stopped
from reflect_core.formats.curves import Curve, read_curve
from reflect_core.physics.film import film_from_dict
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.refnx_bridge import to_refnx_slabs

Q = np.geomspace(0.008, 0.2, 120)
NOISE = 0.05  # dR / R
FILM = {"name": "Si / SiO2 / PS / air", "layers": [
    {"name": "Si", "sld": 2.07, "roughness": 3}, {"name": "SiO2", "sld": 3.47, "thickness": 12, "roughness": 3},
    {"name": "PS", "sld": 6.2, "thickness": 250, "roughness": 5}, {"name": "air", "sld": 0.0}]}
# Refnx's smearing (17-point Gauss–Legendre over ±3.5σ) against a brute-force convolution errs by up
# to 0.64 % at high Q on a 565 Å film (measured while writing the engine), ours by ≤ 0.2 %
# (tests/test_resolution.py): the two engines may differ by their sum, under 1 %.
ENGINES_AGREE = 0.01


def synthetic(film: dict, seed: int, q=Q, dq_fraction=0.03, scale=1.0, background=0.0, ambient=None) -> Curve:
    f = film_from_dict(film)
    if ambient is not None:
        f = f.with_layer(len(f.layers) - 1, sld=ambient)
    r = reflectivity(f, q, dq_abs=dq_fraction * q, scale=scale, background=background)[0]
    dr = NOISE * r
    return Curve(q, r + np.random.default_rng(seed).normal(0.0, dr), dr, dq_fraction * q)


def start_from(film: dict, **changes) -> dict:
    """The film with layer values changed: changes = {index: {field: value}}."""
    layers = [dict(layer) for layer in film["layers"]]
    for i, fields in changes.items():
        layers[int(i)].update(fields)
    return dict(film, layers=layers)


def assert_recovered(result: FitResult, truth: dict, sigmas: float = 3.0):
    for p in result.parameters:
        key = (p["i"], p["par"]) if p["contrast"] is None else (p["contrast"], p["par"])
        if key in truth:
            assert p["stderr"] is not None and p["stderr"] > 0, p
            assert abs(p["value"] - truth[key]) < sigmas * p["stderr"], (p, truth[key])


def chi2_in_range(result: FitResult) -> bool:
    nu = result.n_points - result.n_free
    return abs(result.chi2_reduced - 1.0) < 4 * np.sqrt(2.0 / nu)


PS_BOUNDS = [{"i": 2, "par": "thickness", "bounds": [50, 400]}, {"i": 2, "par": "sld", "bounds": [0, 8]},
             {"i": 2, "par": "roughness", "bounds": [1, 20]}, {"i": 1, "par": "thickness", "bounds": [5, 30]}]
TRUTH = {(2, "thickness"): 250, (2, "sld"): 6.2, (2, "roughness"): 5, (1, "thickness"): 12}


def test_least_squares_recovers_the_truth_within_its_error_bars():
    data = synthetic(FILM, seed=1)
    start = start_from(FILM, **{"2": {"thickness": 240, "sld": 6.0, "roughness": 7}, "1": {"thickness": 15}})
    config = FitConfig.parse({"film": start, "bounds": PS_BOUNDS}, 1)
    result = run_fit(config, [data], search="local")
    assert result.search == "least squares" and result.found_by == "least squares"
    assert result.n_free == 4 and result.n_points == Q.size
    assert_recovered(result, TRUTH)
    assert chi2_in_range(result), result.chi2_reduced
    # χ² is the one definition, over all curves together, with p = the free parameters.
    (curve,) = result.curves
    assert result.chi2_reduced == pytest.approx(chi2_reduced(curve.r, curve.r_fit, curve.dr, 4), rel=1e-12)
    assert result.contrasts[0]["chi2_reduced"] == pytest.approx(result.chi2_reduced, rel=1e-12)
    corr = np.array(result.correlations["matrix"])
    assert corr.shape == (4, 4) and np.allclose(np.diag(corr), 1.0) and np.allclose(corr, corr.T)
    # The fitted film's profile and its refnx curve agree with our own engine at the data's Q and dQ.
    ours = reflectivity(result.film, curve.q, dq_abs=curve.dq, scale=result.scale, background=result.background)[0]
    np.testing.assert_allclose(curve.r_fit, ours, rtol=ENGINES_AGREE)
    z, sld = result.profile
    # The profile reaches bulk 4σ beyond the outer interfaces: the erf tail there is < 3.2e-5 of a step.
    assert sld[0] == pytest.approx(2.07, abs=1e-3) and sld[-1] == pytest.approx(0.0, abs=1e-3)


def test_global_search_finds_the_minimum_that_local_misses():
    data = synthetic(FILM, seed=2)
    # A generic start: the polymer half as thick, fringes out of phase with the data.
    start = start_from(FILM, **{"2": {"thickness": 140, "sld": 4.0, "roughness": 12}})
    config = FitConfig.parse({"film": start, "bounds": PS_BOUNDS}, 1)
    local = run_fit(config, [data], search="local")
    assert local.chi2_reduced > 50  # stuck in a wrong valley
    found = run_fit(config, [data], search="global", seed=0)
    assert found.search == "differential evolution + least squares"
    assert found.found_by in ("least squares", "differential evolution")
    assert chi2_in_range(found), found.chi2_reduced
    assert_recovered(found, TRUTH)
    # "auto" calls this start generic (χ²_red > 50) and searches globally; from a good start, locally.
    assert run_fit(config, [data], search="auto", seed=0).search == "differential evolution + least squares"
    near = FitConfig.parse({"film": start_from(FILM, **{"2": {"thickness": 245}}), "bounds": PS_BOUNDS}, 1)
    assert run_fit(near, [data], search="auto").search == "least squares"


def test_ties_hold_exactly_and_are_not_free():
    # A repeat unit: layer 3 is a copy of layer 1 (thickness, SLD, roughness tied to it).
    film = {"layers": [{"name": "Si", "sld": 2.07, "roughness": 3},
                       {"name": "A", "sld": 1.0, "thickness": 60, "roughness": 4},
                       {"name": "B", "sld": 5.0, "thickness": 40, "roughness": 4},
                       {"name": "A copy", "sld": 1.0, "thickness": 60, "roughness": 4},
                       {"name": "air", "sld": 0.0}]}
    data = synthetic(film, seed=3)
    ties = [{"i": 3, "par": p, "same_as": {"i": 1, "par": p}} for p in ("thickness", "sld", "roughness")]
    bounds = [{"i": 1, "par": "thickness", "bounds": [40, 80]}, {"i": 1, "par": "sld", "bounds": [0, 2]},
              {"i": 2, "par": "thickness", "bounds": [30, 50]}]
    start = start_from(film, **{"1": {"thickness": 64, "sld": 1.2}, "3": {"thickness": 10, "sld": 3.0}})
    result = run_fit(FitConfig.parse({"film": start, "bounds": bounds, "ties": ties}, 1), [data], search="local")
    a, b = result.film.layers[1], result.film.layers[3]
    assert (a.thickness, a.sld, a.roughness) == (b.thickness, b.sld, b.roughness)  # exactly
    assert result.n_free == 3 and result.ties == ties
    assert_recovered(result, {(1, "thickness"): 60, (1, "sld"): 1.0, (2, "thickness"): 40})


def test_a_mixed_layers_volume_fraction_is_recovered():
    phi = 0.3  # SLD = φ·6.36 + (1 − φ)·(−0.56) = 1.516
    film = start_from(FILM, **{"2": {"sld": phi * 6.36 + (1 - phi) * -0.56}})
    data = synthetic(film, seed=4)
    config = FitConfig.parse({"film": film, "bounds": [{"i": 2, "par": "thickness", "bounds": [200, 300]}],
                              "mixes": [{"i": 2, "a": 6.36, "b": -0.56, "phi": {"value": 0.6, "bounds": [0, 1]}}]}, 1)
    result = run_fit(config, [data], search="local")
    (p_phi,) = [p for p in result.parameters if p["par"] == "phi"]
    assert p_phi["i"] == 2 and abs(p_phi["value"] - phi) < 3 * p_phi["stderr"]
    assert result.film.layers[2].sld == pytest.approx(p_phi["value"] * 6.36 + (1 - p_phi["value"]) * -0.56, abs=1e-12)


def test_two_contrasts_share_the_structure_through_the_substrate():
    # A solid/liquid cell measured through the silicon block, in D2O and in H2O.
    film = {"beam_from": "substrate", "layers": [
        {"name": "Si", "sld": 2.07, "roughness": 3}, {"name": "SiO2", "sld": 3.47, "thickness": 15, "roughness": 3},
        {"name": "lipid", "sld": 0.5, "thickness": 40, "roughness": 4}, {"name": "water", "sld": 6.36}]}
    q = np.geomspace(0.01, 0.25, 100)
    d2o = synthetic(film, seed=5, q=q, background=2e-6, ambient=6.36)
    h2o = synthetic(film, seed=6, q=q, background=5e-6, ambient=-0.56)
    raw = {"film": start_from(film, **{"2": {"sld": 1.0, "thickness": 45}}),
           "bounds": [{"i": 2, "par": "thickness", "bounds": [20, 60]}, {"i": 2, "par": "sld", "bounds": [-0.5, 3]}],
           "background": {"value": 1e-6, "bounds": [0, 1e-5]},
           "contrasts": [{"name": "D2O", "ambient_sld": 6.36}, {"name": "H2O", "ambient_sld": -0.56}]}
    result = run_fit(FitConfig.parse(raw, 2), [d2o, h2o], search="local")
    assert [c["name"] for c in result.contrasts] == ["D2O", "H2O"] and result.n_free == 4
    assert [f.layers[-1].sld for f in result.films] == [6.36, -0.56]
    assert result.film.beam_from == "substrate" and result.n_points == 200
    assert_recovered(result, {(2, "thickness"): 40, (2, "sld"): 0.5, (0, "background"): 2e-6,
                              (1, "background"): 5e-6})
    assert chi2_in_range(result)
    assert sum(c["chi2_reduced"] * (c["n_points"] - 4 * c["n_points"] / 200) for c in result.contrasts) == \
        pytest.approx(result.chi2, rel=1e-9)  # each contrast counts its share of p
    for film_k, curve in zip(result.films, result.curves):
        ours = reflectivity(film_k, curve.q, dq_abs=curve.dq, background=result.contrasts[0]["background"]
                            if curve.name == "D2O" else result.contrasts[1]["background"])[0]
        np.testing.assert_allclose(curve.r_fit, ours, rtol=ENGINES_AGREE)


def test_a_solvent_fills_a_layer_in_each_contrast_by_the_same_fraction():
    """A lipid layer (SLD 0.3) holding 25 % water, measured in D2O and in H2O: its SLD is
    φ·0.3 + (1 − φ)·SLD_water of each contrast, with one φ for both; the refnx script export rebuilds it."""
    from reflect_core.formats.refnx_export import refnx_script

    phi, q = 0.75, np.geomspace(0.01, 0.25, 100)
    def film(water: float) -> dict:
        return {"beam_from": "substrate", "layers": [
            {"name": "Si", "sld": 2.07, "roughness": 3}, {"name": "SiO2", "sld": 3.47, "thickness": 15, "roughness": 3},
            {"name": "lipid", "sld": phi * 0.3 + (1 - phi) * water, "thickness": 40, "roughness": 4},
            {"name": "water", "sld": water}]}
    d2o, h2o = synthetic(film(6.36), seed=7, q=q), synthetic(film(-0.56), seed=8, q=q)
    raw = {"film": start_from(film(6.36), **{"2": {"thickness": 45}}),
           "bounds": [{"i": 2, "par": "thickness", "bounds": [20, 60]}],
           "mixes": [{"i": 2, "a": 0.3, "b": "ambient", "phi": {"value": 0.5, "bounds": [0, 1]}}],
           "contrasts": [{"name": "D2O", "ambient_sld": 6.36}, {"name": "H2O", "ambient_sld": -0.56}]}
    config = FitConfig.parse(raw, 2)
    assert config.to_dict()["mixes"][0]["b"] == "ambient"
    result = run_fit(config, [d2o, h2o], search="local")
    (p_phi,) = [p for p in result.parameters if p["par"] == "phi"]
    assert abs(p_phi["value"] - phi) < 3 * p_phi["stderr"] and result.n_free == 2
    for film_k, water in zip(result.films, (6.36, -0.56)):  # the layer follows each contrast's water
        assert film_k.layers[2].sld == pytest.approx(p_phi["value"] * 0.3 + (1 - p_phi["value"]) * water, abs=1e-12)
    assert chi2_in_range(result)
    for film_k, curve in zip(result.films, result.curves):  # our engine on each contrast's film agrees
        np.testing.assert_allclose(curve.r_fit, reflectivity(film_k, curve.q, dq_abs=curve.dq)[0], rtol=ENGINES_AGREE)
    fit = result.to_json()
    assert fit["mixes"] == config.to_dict()["mixes"]
    namespace = {"__name__": "exported"}
    exec(refnx_script(fit), namespace)  # noqa: S102 - our own generated script, user text only through repr
    for model, curve in zip(namespace["build_models"](), result.curves):
        np.testing.assert_allclose(model.model(curve.q, x_err=curve.dq), curve.r_fit, rtol=1e-9)


@pytest.mark.parametrize("beam_from", ["ambient", "substrate"])
def test_refnx_structure_is_our_film_in_the_beams_frame(beam_from):
    """The slabs the fit builds are exactly physics.refnx_bridge's (tested against refnx's kernel in
    test_reflectivity), and the model curve matches our reflectivity() with the same resolution."""
    film = dict(start_from(FILM, **{"1": {"isld": 0.1, "roughness": 6}, "2": {"isld": 0.02}}), beam_from=beam_from)
    config = FitConfig.parse({"film": film, "bounds": PS_BOUNDS}, 1)
    curve = synthetic(film, seed=7)
    model = FitModel(config, [prepare(curve, "x", config.dq)])
    slabs = model.models[0].structure.slabs()[:, :4]
    expected = to_refnx_slabs(config.film.beam_array())
    slabs[0, 2] = 0.0  # the incident medium's iSLD, which neither kernel reads
    np.testing.assert_array_equal(slabs, expected)
    ours = reflectivity(config.film, Q, dq_abs=0.03 * Q)[0]
    np.testing.assert_allclose(model.r_model(0), ours, rtol=ENGINES_AGREE)


def test_scale_and_background_without_bounds_stay_fixed():
    data = synthetic(FILM, seed=8, scale=0.9, background=3e-6)
    config = FitConfig.parse({"film": FILM, "bounds": PS_BOUNDS[:2], "scale": {"value": 0.9},
                              "background": {"value": 3e-6}}, 1)
    result = run_fit(config, [data], search="local")
    assert result.scale == 0.9 and result.background == 3e-6
    assert {p["par"] for p in result.parameters} == {"thickness", "sld"} and result.n_free == 2


def test_dr_column_rules_repeated_q_and_negative_r():
    good = synthetic(FILM, seed=9)
    config = FitConfig.parse({"film": FILM, "bounds": PS_BOUNDS[:2]}, 1)
    with pytest.raises(InvalidInput, match="no dR column"):
        run_fit(config, [Curve(good.q, good.r)])
    with pytest.raises(InvalidInput, match="no point has dR > 0"):
        run_fit(config, [Curve(good.q, good.r, np.zeros_like(good.r))])
    with pytest.raises(InvalidInput, match="1 datasets but 2 curves"):
        run_fit(config, [good, good])
    # Two overlapping segments (repeated Q), unsorted, three points with dR = 0, and two high-Q points
    # whose uncertainty is as large as R measured 1.5 dR low: negative, as real data has them.
    q = np.concatenate((good.q[:80], good.q[60:]))
    r = np.concatenate((good.r[:80], good.r[60:]))
    dr = np.concatenate((good.dr[:80], good.dr[60:]))
    dr[-5:-3] = r[-5:-3]
    r[-5:-3] *= -0.5
    dr[[3, 50, 100]] = 0.0
    order = np.random.default_rng(0).permutation(q.size)
    result = run_fit(config, [Curve(q[order], r[order], dr[order], 0.03 * q[order])], search="local")
    assert result.n_points == q.size - 3
    assert any("3 of 140 points have dR ≤ 0" in note for note in result.notes), result.notes
    assert np.all(np.diff(result.curves[0].q) >= 0) and np.unique(result.curves[0].q).size == 120
    assert chi2_in_range(result)


def test_real_reduced_data(shared_data_path):
    curve = read_curve(shared_data_path)  # overlapping segments (repeated Q) and two negative R
    film = {"layers": [{"name": "Si", "sld": 2.07, "roughness": 3},
                       {"name": "film", "sld": 3.0, "thickness": 700, "roughness": 10}, {"name": "air", "sld": 0}]}
    config = FitConfig.parse({"film": film, "bounds": [{"i": 1, "par": "thickness", "bounds": [600, 800]},
                                                       {"i": 1, "par": "sld", "bounds": [2, 4]}],
                              "scale": {"value": 1, "bounds": [0.7, 1.3]}}, 1)
    result = run_fit(config, [curve], search="local")
    assert result.n_points == curve.q.size and np.isfinite(result.chi2)
    assert any("own dQ column" in note for note in result.notes)


class Recorder:
    def __init__(self, stop_after: int | None = None):
        self.phases, self.logs, self.calls, self.stop_after = [], [], 0, stop_after

    def phase(self, name, done=0, total=0):
        self.phases.append((name, done, total))

    def log(self, message):
        self.logs.append(message)

    def requested(self):
        self.calls += 1
        return "stop" if self.stop_after is not None and self.calls > self.stop_after else None


def test_progress_is_reported_and_a_stop_request_ends_the_fit():
    data = synthetic(FILM, seed=10)
    config = FitConfig.parse({"film": start_from(FILM, **{"2": {"thickness": 140}}), "bounds": PS_BOUNDS}, 1)
    recorder = Recorder()
    run_fit(config, [data], search="global", reporter=recorder, control=recorder)
    names = [p[0] for p in recorder.phases]
    assert names.index("differential evolution") < names.index("least squares") < names.index("uncertainties")
    assert any("differential evolution: χ²_red" in line for line in recorder.logs)
    for search, after in (("global", 3), ("local", 1)):
        stopper = Recorder(stop_after=after)
        with pytest.raises(Stopped):
            run_fit(config, [data], search=search, control=stopper)


def test_result_round_trips_through_json():
    data = synthetic(FILM, seed=11, background=1e-6)
    config = FitConfig.parse({"film": FILM, "bounds": PS_BOUNDS[:2], "background": {"value": 1e-6,
                                                                                    "bounds": [0, 1e-5]}}, 1)
    result = run_fit(config, [data], search="local")
    d = json.loads(json.dumps(result.to_json()))
    assert d["search"] == "least squares" and d["n_free"] == 3 and d["mcmc"] is None
    assert set(d) >= {"film", "films", "scale", "background", "contrasts", "parameters", "ties", "chi2",
                      "chi2_reduced", "n_points", "n_free", "search", "correlations", "mcmc"}
    assert {"name", "i", "par", "contrast", "value", "stderr", "initial", "bounds"} <= set(d["parameters"][0])
    back = FitResult.from_json(d, [data])
    assert back.to_json() == d
    np.testing.assert_allclose(back.curves[0].r_fit, result.curves[0].r_fit, rtol=1e-12)
    np.testing.assert_array_equal(back.profile[1], result.profile[1])
    assert back.film == result.film


def test_chi2_reduced_is_the_written_definition():
    r, r_fit, dr = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 9.0]), np.array([0.5, 1.0, 2.0, 0.0])
    # Points with dR > 0 only: ((0.5/0.5)² + 0 + (1/2)²) / (3 − p)
    assert chi2_reduced(r, r_fit, dr) == pytest.approx(1.25 / 3)
    assert chi2_reduced(r, r_fit, dr, 2) == pytest.approx(1.25)
    assert chi2_reduced(r, r_fit, dr, 3) is None  # N ≤ p: undefined
    assert chi2_reduced(r, r_fit, -dr) is None  # no point counts


def test_a_parameter_the_data_cannot_see_gets_no_error_bar():
    # SiO2 with the substrate's SLD: the Si | SiO2 interface (layer 0's roughness) reflects nothing.
    film = start_from(FILM, **{"1": {"sld": 2.07}})
    config = FitConfig.parse({"film": film, "bounds": PS_BOUNDS[:2] + [{"i": 0, "par": "roughness",
                                                                        "bounds": [1, 10]}]}, 1)
    result = run_fit(config, [synthetic(film, seed=12)], search="local")
    assert [p["stderr"] is None for p in result.parameters] == [False, False, True]
    assert result.correlations is None
    assert any("not determined by the data" in n and "layer 0 (Si) roughness" in n for n in result.notes)


def test_work_a_fit_may_ask_for_is_bounded_before_anything_runs():
    """emcee allocates the whole chain before its first step: 100 free parameters × 400 walkers × 20,000
    steps would be 6.4 GB; the budget refuses it with the largest number of steps it allows."""
    from reflect_core.analysis.fit.budget import MAX_CHAIN_VALUES, check_fit_size, max_mcmc_steps, walkers_for

    assert max_mcmc_steps(100) == MAX_CHAIN_VALUES // (400 * 100) == 250
    with pytest.raises(InvalidInput, match=r"mcmc_steps: 20,000 steps × 400 walkers × 100 free parameters"):
        check_fit_size(100, 20_000)
    check_fit_size(6, max_mcmc_steps(6))  # the largest allowed passes
    assert walkers_for(6) == 24 and walkers_for(3) == 16
    long = Curve(np.geomspace(0.01, 0.3, 20_001), np.ones(20_001), np.ones(20_001))
    with pytest.raises(InvalidInput, match="curve 1 has 20,001 points"):
        run_fit(FitConfig.parse({"film": FILM, "bounds": [{"i": 2, "par": "thickness", "bounds": [200, 300]}]}, 1),
                [long])
