"""SLD profiles and their consistency with the slab reflectivity model."""

import numpy as np
from conftest import DEFAULT_Q

from reflect_core.physics.film import Film, Layer
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.physics.profile import film_microslabs, microslab_stacks, profile_reflectivity, sld_profile
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.simulate import film_profile


def constrained_films(rng, n_films, n_layers, sld_range):
    """Films whose roughness is ≤ 20 Å and ≤ a third of each adjacent layer: the
    regime where Névot–Croce and a graded erf profile should agree."""
    st = np.zeros((n_films, n_layers, 4))
    st[:, :, 0] = rng.uniform(*sld_range, (n_films, n_layers))
    st[:, 0, 0] = 2.07
    st[:, 1:-1, 1] = rng.uniform(0, 0.1, (n_films, n_layers - 2)) * (rng.random((n_films, n_layers - 2)) < 0.3)
    st[:, :, 2] = rng.uniform(20, 200, (n_films, n_layers))
    st[:, -1, :] = 0.0
    for k in range(n_layers - 1):
        limit = np.full(n_films, 20.0)
        for j in (k, k + 1):
            if 0 < j < n_layers - 1:
                limit = np.minimum(limit, st[:, j, 2] / 3)
        st[:, k, 3] = rng.uniform(0, 1, n_films) * limit
    return st


def test_profile_geometry_and_bulk_values():
    z, sld, isld = film_profile(DEFAULT_FILM)
    assert z.size == 900
    assert abs(sld[0] - 2.07) < 1e-3 and abs(sld[-1] - 0.0) < 1e-3  # substrate and air bulk
    sharp = Film(layers=(Layer("Si", 2.07), Layer("a", 4.0, 0.1, 100.0), Layer("air", 0.0)))
    z, sld, isld = film_profile(sharp)
    inside = (z > 1) & (z < 99)
    assert np.allclose(sld[inside], 4.0) and np.allclose(isld[inside], 0.1)
    assert np.allclose(sld[z < 0], 2.07) and np.allclose(sld[z > 100], 0.0)


def test_erf_interface_has_the_roughness_as_its_width():
    film = Film(layers=(Layer("Si", 2.0, 0, 0, 10.0), Layer("air", 0.0)))
    z = np.array([-10.0, 0.0, 10.0])
    _, sld = sld_profile(film.as_array()[None], z)
    # Φ(±1) = 0.8413: 1σ below the interface 84 % substrate, 1σ above 16 %
    np.testing.assert_allclose(sld[0], [2 * 0.841345, 1.0, 2 * 0.158655], rtol=1e-5)


def test_microslab_agrees_with_slab_model_where_nevot_croce_holds():
    rng = np.random.default_rng(11)
    # Realistic materials (H2O −0.56 to D2O 6.36), measured with the usual 2.95 % resolution.
    stacks = constrained_films(rng, 200, 7, (-0.56, 6.36))
    slab = reflectivity(stacks, DEFAULT_Q, 0.0295)
    graded = reflectivity(film_microslabs(stacks), DEFAULT_Q, 0.0295)
    rel = np.abs(graded / slab - 1)
    print(f"smeared: p99 {np.percentile(rel, 99):.4f}")
    assert np.percentile(rel, 99) <= 0.02
    # Unsmeared, on the pyreflect prior's SLD range.
    stacks = constrained_films(rng, 200, 7, (1.0, 5.0))
    slab = reflectivity(stacks, DEFAULT_Q)
    graded = reflectivity(film_microslabs(stacks), DEFAULT_Q)
    decades = np.abs(np.log10(graded / slab))
    print(f"unsmeared: p99 {np.percentile(np.abs(graded / slab - 1), 99):.4f}, "
          f"{np.percentile(decades, 99):.4f} decades")
    assert np.percentile(np.abs(graded / slab - 1), 99) <= 0.02
    assert np.percentile(decades, 99) <= 0.01


def test_sharp_interfaces_are_exact_in_microslabs():
    rng = np.random.default_rng(12)
    stacks = constrained_films(rng, 100, 6, (-0.56, 6.36))
    stacks[:, :, 3] = 0.0
    rel = np.abs(reflectivity(film_microslabs(stacks), DEFAULT_Q) / reflectivity(stacks, DEFAULT_Q) - 1)
    assert np.percentile(rel, 99) < 0.005  # cell averages keep each step's position


def test_large_roughness_really_differs():
    # The app warns here; the test shows the warning is about a real difference:
    # a 30 Å layer between two 25 Å interfaces never reaches its plateau SLD.
    rough = np.array([[[2.07, 0, 0, 25.0], [6.0, 0, 30.0, 25.0], [0, 0, 0, 0]]])
    slab = reflectivity(rough, DEFAULT_Q)
    diff = np.abs(np.log10(reflectivity(film_microslabs(rough), DEFAULT_Q) / slab))
    assert diff[slab > 1e-10].max() > 0.05  # > 12 %, six times the agreement in the Névot–Croce regime


def test_point_sampled_profile_path():
    film = Film(layers=(Layer("Si", 2.07, 0, 0, 5.0), Layer("a", 4.0, 0, 150.0, 8.0), Layer("air", 0.0)))
    stacks = film.as_array()[None]
    z = np.arange(-40.0, 200.0, 0.25)
    _, sld = sld_profile(stacks, z)
    r = profile_reflectivity(z, sld, DEFAULT_Q, 0.0295)[0]
    r_slab = reflectivity(stacks, DEFAULT_Q, 0.0295)[0]
    assert np.percentile(np.abs(r / r_slab - 1), 99) < 0.02
    assert microslab_stacks(z, sld).shape == (1, z.size + 1, 4)


def test_the_profile_reaches_both_bulks_when_an_inner_interface_is_very_rough():
    """A 10 Å top layer over a 60 Å-rough interface: that interface still rises 4σ = 240 Å past its
    position, well beyond the top interface at 210 Å, and the drawn profile must get there."""
    from reflect_core.physics.film import Film, Layer
    from reflect_core.physics.simulate import film_profile

    film = Film(layers=(Layer("Si", 2.07, 0, 0, 3), Layer("PS", 1.4, 0, 200, 60), Layer("top", 4.0, 0, 10, 2),
                        Layer("air", 0.0, 0, 0, 0)))
    z, sld, _ = film_profile(film)
    # erfc(4/√2)/2 = 3.2e-5 of a step of at most 4 × 10⁻⁶ Å⁻² is left at the ends.
    assert abs(sld[-1] - 0.0) < 2e-4 and abs(sld[0] - 2.07) < 2e-4
    assert z.max() >= 200 + 4 * 60 and z.min() <= 200 - 4 * 60  # it decays both ways
