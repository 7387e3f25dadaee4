"""Where a refinement fit starts (reflect_core.analysis.start): fit configurations from a profile
(with and without a band), from any film, and from a saved model's prediction for a measured
curve; each one is read by FitConfig.parse, and its bounds hold the start values (and, where the
start came from an honest band, the truth) within the physical maxima."""

import numpy as np
import pytest
import torch

from reflect_core.analysis.fit import FitConfig
from reflect_core.analysis.slabify import slabify
from reflect_core.analysis.start import (
    BACKGROUND,
    SCALE,
    Spread,
    background_from,
    band_spreads,
    start_from_film,
    start_from_model,
    start_from_profile,
)
from reflect_core.base.errors import InvalidInput
from reflect_core.formats.curves import Curve
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import save_model
from reflect_core.ml.models import build_model
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import ModelSettings
from reflect_core.physics.film import MAXIMA, Film, Layer, film_from_dict
from reflect_core.physics.presets import PRESETS
from reflect_core.physics.profile import sld_profile
from reflect_core.physics.reflectivity import reflectivity

DPS = PRESETS["Si / SiO2 / polymer (dPS) / air"]
TI = PRESETS["Si / Ti / H2O (negative SLD, beam through Si)"]


def profile(film, z):
    return sld_profile(film.as_array(), z)[1][0]


def bounds_of(config) -> dict:
    return {(b["i"], b["par"]): tuple(b["bounds"]) for b in config["bounds"]}


def check_config(config, film: Film) -> dict:
    """Parsed by the fit; every inner layer's SLD, thickness, roughness and the substrate's roughness
    vary, the outer SLDs are fixed; every bound holds its value and stays within the maxima."""
    parsed = FitConfig.parse(config, 1)
    assert parsed.film.layers == film.layers and parsed.film.beam_from == film.beam_from
    bounds, last = bounds_of(config), len(film.layers) - 1
    expected = {(0, "roughness")} | {(i, par) for i in range(1, last) for par in ("sld", "thickness", "roughness")}
    assert expected <= set(bounds) and (0, "sld") not in bounds and (last, "sld") not in bounds
    for (i, par), (lo, hi) in bounds.items():
        assert lo <= getattr(film.layers[i], par) <= hi and lo < hi, (i, par)
        assert (-MAXIMA[par] if par == "sld" else 0.0) <= lo and hi <= MAXIMA[par], (i, par)
    return bounds


@pytest.mark.parametrize("name", list(PRESETS))
def test_start_from_any_film(name):
    film = PRESETS[name]
    config = start_from_film(film)
    bounds = check_config(config, film)
    assert config["scale"] == SCALE and config["background"] == BACKGROUND and "dq" not in config
    for i, layer in enumerate(film.layers[1:-1], start=1):  # the stated default spread
        width = max(0.3 * abs(layer.sld), 1.0)
        assert bounds[(i, "sld")] == pytest.approx((layer.sld - width, layer.sld + width))
        width = max(0.5 * layer.thickness, 10.0)
        assert bounds[(i, "thickness")] == pytest.approx((max(layer.thickness - width, 0.0), layer.thickness + width))
        assert bounds[(i, "roughness")][0] == 0.0
    absorbing = {(i, "isld") for i, layer in enumerate(film.layers[1:-1], start=1) if layer.isld > 0}
    assert {key for key in bounds if key[1] == "isld"} == absorbing  # Au's absorption varies; none elsewhere


def test_roughness_bounds():
    bounds = bounds_of(start_from_film(DPS))
    # σ + 10 Å, but at most half the thinner inner neighbour's upper thickness bound (SiO2: 15 + 10 Å)
    assert bounds[(0, "roughness")] == (0.0, 12.5) and bounds[(1, "roughness")] == (0.0, 12.5)
    assert bounds[(2, "roughness")] == (0.0, 15.0)  # dPS (300 Å) on air: σ + 10 Å


def test_films_at_the_physical_limits_still_give_valid_configurations():
    edge = Film(layers=(Layer("sub", 2.07, roughness=1000.0), Layer("a", -100.0, thickness=5e4, roughness=0.0),
                        Layer("b", 100.0, 100.0, 5e4, 1000.0), Layer("amb", 0.0)))
    bounds = check_config(start_from_film(edge), edge)
    assert bounds[(1, "sld")] == (-100.0, -70.0) and bounds[(2, "sld")] == (70.0, 100.0)
    assert sum(bounds[(i, "thickness")][1] for i in (1, 2)) <= 1e5  # the fit's bound on the whole stack
    assert bounds[(2, "isld")] == (0.0, 100.0)
    zero = Film(layers=(Layer("sub", 0.0), Layer("a", 0.0, thickness=0.0), Layer("amb", 0.0)))
    check_config(start_from_film(zero), zero)


def test_a_spread_narrows_or_widens_the_bounds_and_bad_ones_are_refused():
    narrow = bounds_of(start_from_film(DPS, Spread(thickness_rel=0.1, thickness_min=1.0, sld_rel=0.05, sld_min=0.1)))
    assert narrow[(2, "thickness")] == pytest.approx((270.0, 330.0))
    assert narrow[(2, "sld")] == pytest.approx((6.08, 6.72))
    with pytest.raises(InvalidInput, match="spread.thickness_rel"):
        Spread(thickness_rel=-1)
    with pytest.raises(InvalidInput, match="spread: expected a Spread"):
        start_from_film(DPS, 0.5)
    with pytest.raises(InvalidInput, match="film: expected a Film"):
        start_from_film(DPS.to_dict())
    with pytest.raises(InvalidInput, match="dq: the resolution"):
        start_from_film(DPS, dq=0.7)


def test_start_from_a_profile():
    z = np.linspace(-40.0, 375.0, 300)
    config = start_from_profile(z, profile(DPS, z), beam_from="substrate", dq=0.03)
    film = Film(layers=tuple(Layer(l.name, l.sld, l.isld, l.thickness, l.roughness) for l in
                             FitConfig.parse(config, 1).film.layers), beam_from="substrate")
    check_config(config, film)
    # noise-free: slabify gives the film back to round-off (tests/test_slabify.py)
    np.testing.assert_allclose(film.as_array(), DPS.as_array(), atol=1e-6)
    assert config["dq"] == 0.03 and config["film"]["beam_from"] == "substrate"


def test_band_based_bounds_hold_the_truth_and_are_narrower_than_the_default():
    """The network's profile is a slightly wrong film (B); its band is honest: it holds the true
    film's (A) profile. Every bound then holds A's value, though none was centred on it."""
    truth = DPS
    wrong = Film(layers=(Layer("Si", 2.07, roughness=3.0), Layer("SiO2", 3.3, thickness=18.0, roughness=3.0),
                         Layer("dPS", 6.3, thickness=306.0, roughness=6.5), Layer("air", 0.0)))
    z = np.linspace(-40.0, 380.0, 300)
    a, b = profile(truth, z), profile(wrong, z)
    band = (np.minimum(a, b) - 0.1, np.maximum(a, b) + 0.1)
    config = start_from_profile(z, b, band=band)
    bounds = bounds_of(config)
    film = FitConfig.parse(config, 1).film
    assert len(film.layers) == len(truth.layers)
    for (i, par), (lo, hi) in bounds.items():
        assert lo <= getattr(truth.layers[i], par) <= hi, (i, par, lo, hi)
    default = bounds_of(start_from_film(film))
    width = {key: hi - lo for key, (lo, hi) in bounds.items()}
    assert width[(2, "thickness")] < 0.25 * (default[(2, "thickness")][1] - default[(2, "thickness")][0])
    assert width[(2, "sld")] < 0.5 * (default[(2, "sld")][1] - default[(2, "sld")][0])


def test_a_band_gives_each_parameter_a_half_width():
    # 10 Å of a layer between 4 Å interfaces: no point is 2σ from both, so its SLD is never seen flat
    film = Film(layers=(Layer("Si", 2.07, roughness=4.0), Layer("thin", 4.5, thickness=10.0, roughness=4.0),
                        Layer("polymer", 1.4, thickness=100.0, roughness=3.0), Layer("air", 0.0)))
    z = np.linspace(-40.0, film.total_thickness + 60.0, 300)
    sld = profile(film, z)
    fit = slabify(z, sld, band=(sld - 0.2, sld + 0.2))
    spread = band_spreads(fit)
    assert fit.k == 2 and spread[(2, "sld")] == pytest.approx(0.2)  # the polymer's plateau: the band's half-width
    assert (1, "sld") not in spread
    # Where the band lets a profile cross an interface's midpoint SLD: ±0.2 on the polymer/air step
    # of 1.4 with σ = 3 Å reaches Φ⁻¹(0.5 + 0.2/1.4)·3 Å = 1.098 Å either side, resolved to the grid
    # (up to one 0.70 Å step more).
    assert 1.098 <= spread[(2, "roughness")] < 1.098 + 0.71
    assert spread[(2, "thickness")] == pytest.approx(spread[(1, "roughness")] + spread[(2, "roughness")])
    assert slabify(z, sld).band is None and band_spreads(slabify(z, sld)) == {}


def test_background_from_the_high_q_floor():
    q = np.geomspace(0.008, 0.2, 200)
    r = reflectivity(DPS.beam_array()[None], q, dq_abs=0.03 * q)[0] + 2e-6
    found = background_from(Curve(q, r, 0.05 * r))
    assert found["bounds"][0] == 0.0 <= 2e-6 <= found["bounds"][1] and found["value"] >= 2e-6
    assert found["bounds"][1] == pytest.approx(10 * found["value"])
    noisy_zero = np.r_[r[:-20], np.tile([-1e-7, 1e-7, -2e-7, 0.0], 5)]  # reduced data around zero at high Q
    assert background_from(Curve(q, noisy_zero)) == BACKGROUND
    assert background_from(None) == BACKGROUND and background_from(Curve(q)) == BACKGROUND
    check = start_from_film(DPS, curve=Curve(q, r, 0.05 * r))
    assert FitConfig.parse(check, 1).contrasts[0].background.hi == pytest.approx(found["bounds"][1])


def fixed_output_model(folder, film: Film, q: np.ndarray, z: np.ndarray, dq: float, prior: dict | None = None) -> None:
    """A real saved model (CompactCNN + model.json) whose output is ``film``'s profile for any curve:
    the last layer's weights are zero and its bias the normalised profile (no training needed)."""
    sld = profile(film, z)
    normalizer = Normalizer(log_r_min=-9.0, log_r_max=0.0, sld_min=float(sld.min()) - 1.0,
                            sld_max=float(sld.max()) + 1.0, q_min=float(q[0]), q_max=float(q[-1]),
                            z_min=float(z[0]), z_max=float(z[-1]))
    settings = ModelSettings(layers=1, channels=4, hidden=16, dropout=0.0)
    model = build_model(settings, q.size, z.size)
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.from_numpy(normalizer.sld(sld)))
    meta = ModelMeta(model=settings, q=q, z=z, dq=dq, normalization=normalizer, beam_from=film.beam_from,
                     source={"kind": "test"}, prior=prior)
    save_model(folder, model, meta)


def test_start_from_a_saved_models_prediction(tmp_path):
    q, z = np.geomspace(0.0081, 0.1975, 308), np.linspace(-40.0, 175.0, 300)
    fixed_output_model(tmp_path / "model", TI, q, z, dq=0.025)
    r = reflectivity(TI.beam_array()[None], q, dq_abs=0.025 * q)[0]
    config, analysis = start_from_model(tmp_path / "model", Curve(q, r, 0.05 * r))
    np.testing.assert_allclose(analysis.sld, profile(TI, z), atol=1e-5)  # float32 through the network
    assert analysis.notes == ("start: the predicted profile cut into slabs",)  # the model has no prior
    assert analysis.q.size == q.size
    parsed = FitConfig.parse(config, 1)
    assert parsed.dq == 0.025 and parsed.film.beam_from == "substrate"  # the model's resolution and beam side
    # The float32 profile is exact to ~1e-6: the film comes back to well under 1e-3 (Å, 10⁻⁶ Å⁻²).
    np.testing.assert_allclose(parsed.film.as_array(), TI.as_array(), atol=1e-3)
    config2, _ = start_from_model(tmp_path / "model", Curve(q, r, 0.05 * r), n_layers=1)
    assert len(config2["film"]["layers"]) == 3


def test_a_model_with_a_prior_starts_from_its_prior_fitted_to_the_profile():
    """The shipped model keeps its prior: the start is that prior's film, its varying parameters fitted
    to the predicted profile and bounded as in training, and the refinement from it explains the data."""
    from reflect_core.analysis.fit import run_fit
    from reflect_core.ml.builtin import builtin_models
    [shipped] = [m for m in builtin_models() if m.name == "default_prior"]
    meta = shipped.meta
    truth = film_from_dict(meta.prior["film"]).with_layer(3, thickness=150.0, sld=2.9)
    r = reflectivity(truth.beam_array()[None], meta.q, meta.dq)[0]
    noisy = r * (1 + 0.03 * np.random.default_rng(0).standard_normal(r.size))
    curve = Curve(meta.q, noisy, 0.03 * r)
    config, analysis = start_from_model(shipped.model_dir, curve)
    assert analysis.notes[-1].startswith("start: the model's prior")
    varying = [b for b in meta.prior["bounds"] if b["bounds"][1] > b["bounds"][0]]
    assert config["bounds"] == varying and len(config["film"]["layers"]) == len(meta.prior["film"]["layers"])
    for b in varying:  # every start value inside the prior's own bounds
        value = config["film"]["layers"][b["i"]][b["par"]]
        assert b["bounds"][0] <= value <= b["bounds"][1]
    result = run_fit(FitConfig.parse(config, 1), [curve], search="local")
    # 3 % noise with dR = 3 % of R: a right model gives χ²_red ≈ 1 ± a few √(2/ν); 2 allows a local minimum
    # a little above the truth's but not a wrong valley (the prior's own film starts at χ²_red in the tens).
    assert result.chi2_reduced < 2.0


@pytest.mark.parametrize("bound", [{"i": 7, "par": "sld", "bounds": [0, 1]}, {"i": 1, "par": "rho", "bounds": [0, 1]},
                                   {"i": 1, "par": "sld", "bounds": "ab"}, {"i": -1, "par": "sld", "bounds": [0, 1]},
                                   {"i": 1, "par": "sld", "bounds": [2, 1]}])
def test_a_malformed_prior_in_a_model_falls_back_to_slabs(tmp_path, bound):
    """model.json's prior is free-form (an uploaded model's too): a bad bound never reaches the start."""
    from reflect_core.analysis.prior_start import varying_bounds

    q, z = np.geomspace(0.0081, 0.1975, 308), np.linspace(-40.0, 175.0, 300)
    prior = {"film": TI.to_dict(), "bounds": [bound]}
    with pytest.raises(InvalidInput, match="the model's prior: bound 1"):
        varying_bounds(prior)
    fixed_output_model(tmp_path / "model", TI, q, z, dq=0.025, prior=prior)
    r = reflectivity(TI.beam_array()[None], q, dq_abs=0.025 * q)[0]
    config, analysis = start_from_model(tmp_path / "model", Curve(q, r, 0.05 * r))
    assert analysis.notes[-1] == "start: the predicted profile cut into slabs"
    FitConfig.parse(config, 1)
