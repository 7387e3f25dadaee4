"""Slab films from SLD profiles (reflect_core.analysis.slabify): a known film's own profile gives
the film back (layer count by BIC, parameters), with noise within its standard errors, flat and
step profiles, shifted z, bad inputs, determinism and speed."""

import re
import time

import numpy as np
import pytest

from reflect_core.analysis.slabify import MAX_SLAB_LAYERS, _jacobian, _model, slabify
from reflect_core.base.errors import InvalidInput
from reflect_core.physics.presets import DEFAULT_FILM, PRESETS
from reflect_core.physics.profile import sld_profile

# Every preset has well-separated interfaces except DEFAULT_FILM (pyreflect's prior: roughness up to
# 77 Å on 73 Å layers), which is recovered exactly without noise but is graded, not slab-like, with it.
SEPARATED = [name for name in PRESETS if name != DEFAULT_FILM.name]


def grid(film, points=300):
    """300 points from 40 Å inside the substrate to 60 Å into the ambient (bulk at both ends)."""
    return np.linspace(-40.0, film.total_thickness + 60.0, points)


def profile(film, z):
    return sld_profile(film.as_array(), z)[1][0]


def parameters(film, offset=0.0):
    """[offset, SLDs, inner thicknesses, roughnesses]: slabify's parameter vector of a film."""
    a = film.as_array()
    return np.concatenate(([offset], a[:, 0], a[1:-1, 2], a[:-1, 3]))


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_films_own_profile_gives_the_film_back(name):
    film = PRESETS[name]
    z = grid(film)
    fit = slabify(z, profile(film, z), beam_from=film.beam_from)
    assert fit.k == len(film.layers) - 2 and fit.chosen_by == "BIC"
    # Noise-free, the erf model is the profile's generator: what is left is the optimizer's
    # convergence (the misfit reaches round-off), so 1e-6 in the units (Å, 10⁻⁶ Å⁻²) is generous.
    assert fit.rms < 1e-8
    np.testing.assert_allclose(parameters(fit.film, fit.offset), parameters(film), atol=1e-6)
    assert fit.film.beam_from == film.beam_from and fit.offset == pytest.approx(0.0, abs=1e-6)
    best = min(fit.criteria, key=lambda row: row.bic)
    assert best.k == fit.k and [row.n_params for row in fit.criteria] == [3 * row.k + 4 for row in fit.criteria]
    np.testing.assert_allclose(fit.profile(z), profile(film, z), atol=1e-8)


def test_a_long_profile_is_fitted_on_300_of_its_points_and_judged_on_all():
    """A grid as long as pyreflect's (898 points: every third is fitted, exactly): the points fitted are
    real samples, so the film still comes back to round-off; the misfit is measured on all of them."""
    z = grid(DEFAULT_FILM, 898)
    sld = profile(DEFAULT_FILM, z)
    sld[1::3] += 0.5  # 299 points the fit never sees: only the misfit does
    fit = slabify(z, sld)
    assert fit.k == 6
    np.testing.assert_allclose(parameters(fit.film, fit.offset), parameters(DEFAULT_FILM), atol=1e-6)
    assert fit.rms == pytest.approx(0.5 * np.sqrt(299 / 898), rel=1e-6)


def test_a_profile_on_another_z_origin_is_the_same_film_with_its_offset():
    """pyreflect's labels start at the lowest interface minus 3σ: the film is the same, the shift is reported."""
    film = PRESETS["Si / SiO2 / polymer (dPS) / air"]
    z = grid(film)
    fit = slabify(z + 37.5, profile(film, z))
    assert fit.k == 2 and fit.offset == pytest.approx(37.5, abs=1e-6)
    np.testing.assert_allclose(parameters(fit.film), parameters(film), atol=1e-6)
    np.testing.assert_allclose(fit.interfaces, 37.5 + np.array([0.0, 15.0, 315.0]), atol=1e-6)


@pytest.mark.parametrize("name", SEPARATED[:3])
def test_with_noise_the_count_holds_and_parameters_stay_within_their_standard_errors(name):
    film = PRESETS[name]
    z = grid(film)
    noise = 0.05  # 10⁻⁶ Å⁻², ~1 % of the SLD range: a good network's profile error
    truth = parameters(film)
    k = len(film.layers) - 2
    jac = _jacobian(truth, k, z)
    stderr = noise * np.sqrt(np.diag(np.linalg.inv(jac.T @ jac)))  # linearised least-squares errors
    for seed in range(2):
        fit = slabify(z, profile(film, z) + np.random.default_rng(seed).normal(0.0, noise, z.size), max_layers=k + 2)
        assert fit.k == k, (seed, [(row.k, round(row.bic, 1)) for row in fit.criteria])
        # 5 standard errors: a fixed seed, and a margin for the nonlinearity the linearised errors
        # ignore (15 runs over these films reached 2.5 at most).
        assert np.all(np.abs(parameters(fit.film, fit.offset) - truth) <= 5 * stderr), seed
        assert fit.rms == pytest.approx(noise, rel=0.15)  # the misfit is the noise: nothing systematic is left


def ripples(z, seed, correlation=5.0, rms=0.1):
    """Smooth random errors (Gaussian-correlated over ``correlation`` Å), as a network's are."""
    white = np.random.default_rng(seed).normal(size=z.size + 200)
    kernel = np.exp(-0.5 * (np.arange(-100, 101) * (z[1] - z[0]) / correlation) ** 2)
    smooth = np.convolve(white, kernel, mode="valid")[:z.size]
    return rms * smooth / smooth.std()


def test_smooth_errors_count_as_fewer_independent_points():
    """BIC with all 300 points would take the most layers offered to follow 0.1-rms ripples of 5 Å
    correlation; counting the misfit's independent points keeps the film's two."""
    film = PRESETS["Si / SiO2 / polymer (dPS) / air"]
    z = grid(film)
    n = z.size
    for seed in range(2):
        fit = slabify(z, profile(film, z) + ripples(z, seed))
        assert fit.k == 2 and fit.effective_points < 0.5 * n, (seed, fit.effective_points)
        naive = min(fit.criteria, key=lambda row: n * np.log(row.rms**2) + row.n_params * np.log(n))
        assert naive.k > 2
    white = slabify(z, profile(film, z) + np.random.default_rng(0).normal(0.0, 0.1, n), max_layers=4)
    assert white.effective_points > 0.6 * n  # white noise: (nearly) every point counts


def test_flat_and_single_step_profiles():
    z = np.linspace(-50.0, 150.0, 200)
    flat = slabify(z, np.full(z.size, 2.07))
    assert flat.k == 0 and [l.sld for l in flat.film.layers] == [2.07, 2.07] and flat.rms < 1e-12
    noisy = slabify(z, 2.07 + np.random.default_rng(1).normal(0.0, 0.05, z.size))
    assert noisy.k == 0
    assert noisy.film.layers[0].sld == pytest.approx(2.07, abs=0.05)  # median of the first 5 points, refined
    bare = PRESETS["Bare Si / air (Fresnel)"]
    step = slabify(z, profile(bare, z))
    assert step.k == 0 and step.film.layers[0].roughness == pytest.approx(3.0, abs=1e-6)
    assert [row.k for row in flat.criteria] == [0]  # k ≥ 1 cannot beat an exact fit: not even tried


def test_a_given_layer_count_is_used_and_the_rest_still_listed():
    film = PRESETS["Si / Au / polymer (PS) / D2O (beam through Si)"]
    z = grid(film)
    fit = slabify(z, profile(film, z), n_layers=2)
    assert fit.k == 2 and fit.chosen_by == "given" and [row.k for row in fit.criteria] == [0, 1, 2]
    assert fit.rms > 0.01  # three layers squeezed into two


def test_the_jacobian_is_the_derivative_of_the_apps_profile():
    film = PRESETS["Si / Au / polymer (PS) / D2O (beam through Si)"]
    z = grid(film)
    x = parameters(film, 1.3)
    step = 1e-6 * np.maximum(1.0, np.abs(x))
    numeric = np.stack([(_model(x + dx, 3, z) - _model(x - dx, 3, z)) / (2 * dx[i])
                        for i, dx in enumerate(np.diag(step))], axis=1)
    # Central differences err by O(step²·f''') ≈ 1e-9 here; the profile evaluates the erf only within
    # 7σ (1e-12 beyond), which the analytic derivative does not: both far below 1e-6.
    np.testing.assert_allclose(_jacobian(x, 3, z), numeric, atol=1e-6)


def test_unsorted_input_is_sorted_and_results_are_deterministic():
    film = PRESETS["Si / SiO2 / polymer (dPS) / air"]
    z = grid(film)
    sld = profile(film, z) + np.random.default_rng(3).normal(0.0, 0.05, z.size)
    order = np.random.default_rng(4).permutation(z.size)
    a, b = slabify(z, sld, max_layers=4), slabify(z[order], sld[order], max_layers=4)
    assert a.film == b.film and a.criteria == b.criteria and a.offset == b.offset


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (([0.0, 1.0], [1.0, 2.0]), {}, "at least 10 points"),
    ((np.arange(20.0), np.r_[np.ones(19), np.nan]), {}, "1 values are NaN or infinite"),
    ((np.arange(20.0), np.ones(19)), {}, "20 z values but 19 SLD values"),
    ((np.r_[np.arange(19.0), 3.0], np.ones(20)), {}, "values repeat"),
    ((np.arange(20.0), np.full(20, 500.0)), {}, "physical bound"),
    ((np.arange(20.0), np.ones((2, 10))), {}, "one row of numbers"),
    ((np.arange(20.0), ["a"] * 20), {}, "list of numbers"),
    ((np.arange(20.0), np.ones(20)), {"n_layers": True}, "n_layers"),
    ((np.arange(20.0), np.ones(20)), {"n_layers": 2.5}, "n_layers"),
    ((np.arange(20.0), np.ones(20)), {"n_layers": 6},
     "n_layers: must be a whole number in [0, 5] (k layers take 3k + 4 parameters, fewer than the 20 points)"),
    ((np.arange(400.0), np.ones(400)), {"max_layers": MAX_SLAB_LAYERS + 1}, "max_layers"),
    ((np.arange(20.0), np.ones(20)), {"max_layers": -1}, "max_layers"),
    ((np.arange(20.0), np.ones(20)), {"band": np.ones(20)}, "band: expected a pair"),
    ((np.arange(20.0), np.ones(20)), {"band": (np.ones(20), np.ones(19))}, "band: lo and hi need 20 values"),
    ((np.arange(20.0), np.ones(20)), {"band": (np.ones(20), np.zeros(20))}, "lo is above hi at 20 points"),
    ((np.arange(20.0), np.ones(20)), {"beam_from": "side"}, "beam_from"),
])
def test_bad_inputs_are_refused_with_a_message_naming_them(args, kwargs, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        slabify(*args, **kwargs)


def test_a_300_point_profile_with_up_to_6_layers_takes_under_a_second():
    """CPU time, not wall time: the machine is shared; the fit runs on one thread (numba's count is
    set to 1 for the call, per thread). Measured 0.07–0.4 s CPU on these profiles."""
    z = np.linspace(-50.0, 700.0, 300)
    sld = profile(DEFAULT_FILM, z)
    slabify(z, sld, max_layers=1)  # the profile kernel's compiled code is loaded once per process
    for noisy in (sld, sld + np.random.default_rng(0).normal(0.0, 0.03, z.size)):
        start = time.process_time()
        fit = slabify(z, noisy, max_layers=6)
        assert time.process_time() - start < 1.0, [(row.k, row.bic) for row in fit.criteria]
