"""Unsmeared reflectivity against refnx's Abeles kernel (an independent engine)."""

import numpy as np
import pytest
from conftest import DEFAULT_Q, random_stacks
from refnx.reflect import _creflect

from reflect_core.physics.film import Film, Layer
from reflect_core.physics.kernel import parratt
from reflect_core.physics.presets import PRESETS
from reflect_core.physics.reflectivity import QError, reflectivity
from reflect_core.physics.refnx_bridge import to_refnx_slabs


def test_matches_refnx_abeles_on_600_random_films():
    rng = np.random.default_rng(20261128)
    batches = [random_stacks(rng, 200, n) for n in (3, 6, 10)]
    q = np.geomspace(0.002, 0.6, 400)  # reaches R ~ 1e-13 for rough films
    ours = np.concatenate([reflectivity(stacks, q) for stacks in batches])
    ref = np.concatenate([_creflect.abeles_vectorised(q, to_refnx_slabs(stacks)) for stacks in batches])
    # The set must contain what the claim covers: total reflection, absorption, tiny R.
    assert np.sum(ref > 0.999) > 100
    assert all(np.any(stacks[:, 1:-1, 1] > 0) for stacks in batches[1:])
    assert ref.min() < 1e-12
    rel = np.abs(ours / ref - 1)
    # Both are double-precision evaluations of the same exact formula: 1e-9 leaves
    # rounding room for R ~ 1e-12 (|r| ~ 1e-6 computed from O(1) terms).
    assert rel.max() <= 1e-9, rel.max()


def test_single_interface_is_fresnel():
    q = np.geomspace(0.005, 0.3, 200)
    film = Film(layers=(Layer("Si", 2.07), Layer("air", 0.0)))
    r = reflectivity(film, q)[0]
    kz = q / 2
    ks = np.sqrt(kz**2 - 4 * np.pi * 2.07e-6 + 0j)
    fresnel = np.abs((kz - ks) / (kz + ks)) ** 2
    np.testing.assert_allclose(r, fresnel, rtol=1e-12)
    assert np.all(r[q < 4 * np.sqrt(np.pi * 2.07e-6)] > 1 - 1e-12)  # total reflection below Qc


def test_beam_through_substrate_matches_refnx_with_reversed_media():
    film = PRESETS["Si / Au / polymer (PS) / D2O (beam through Si)"]
    q = np.geomspace(0.005, 0.3, 300)
    ours = reflectivity(film, q)[0]
    # refnx: fronting Si, backing D2O; each row's roughness is toward the fronting.
    layers = film.layers
    w = np.array([[0, layers[0].sld, 0, 0]]
                 + [[l.thickness, l.sld, l.isld, layers[i - 1].roughness]
                    for i, l in enumerate(layers) if 0 < i < len(layers) - 1]
                 + [[0, layers[-1].sld, layers[-1].isld, layers[-2].roughness]])
    np.testing.assert_allclose(ours, _creflect.abeles(q, w), rtol=1e-9)
    # and the edge is where Si/D2O total reflection should be
    qc = 4 * np.sqrt(np.pi * (6.36 - 2.07) * 1e-6)
    assert ours[q < 0.95 * qc].min() > 0.95


def test_scale_and_background_per_film():
    rng = np.random.default_rng(1)
    stacks = random_stacks(rng, 3, 4)
    plain = reflectivity(stacks, DEFAULT_Q)
    scaled = reflectivity(stacks, DEFAULT_Q, scale=[1.0, 2.0, 0.5], background=[0, 1e-6, 2e-7])
    np.testing.assert_allclose(scaled[1], 2 * plain[1] + 1e-6, rtol=1e-12)
    np.testing.assert_allclose(scaled[2], 0.5 * plain[2] + 2e-7, rtol=1e-12)


def test_per_film_q_grids():
    rng = np.random.default_rng(2)
    stacks = random_stacks(rng, 2, 5)
    q2 = np.stack([DEFAULT_Q, DEFAULT_Q * 1.1])
    both = parratt(q2, stacks)
    np.testing.assert_allclose(both[1], parratt(DEFAULT_Q * 1.1, stacks[1:])[0], rtol=1e-14)


@pytest.mark.parametrize(
    "q, message",
    [
        (np.array([0.01, np.nan]), "non-finite"),
        (np.array([-0.01, 0.02]), "> 0"),
        (np.array([0.0, 0.02]), "> 0"),
        (np.zeros((2, 2)) + 0.1, "1-D"),
        (np.array([]), "non-empty"),
    ],
)
def test_bad_q_rejected_with_message(q, message):
    with pytest.raises(QError, match=message):
        reflectivity(PRESETS["Bare Si / air (Fresnel)"], q)


def test_duplicate_q_allowed():
    q = np.array([0.01, 0.02, 0.02, 0.03])
    r = reflectivity(PRESETS["Bare Si / air (Fresnel)"], q, 0.03)[0]
    assert r[1] == r[2]


def test_identical_neighbours_at_the_critical_edge_are_finite():
    # Flat stretches of a microslab profile put identical media side by side; exactly
    # at the substrate's critical edge both wavevectors are zero, which once gave 0/0.
    substrate_sld = 2.07
    qc = 4 * np.sqrt(np.pi * substrate_sld * 1e-6)
    plain = np.array([[[substrate_sld, 0, 0, 0], [4.0, 0, 80.0, 3.0], [0, 0, 0, 0]]])
    doubled = np.array([[[substrate_sld, 0, 0, 0], [substrate_sld, 0, 5.0, 0], [4.0, 0, 80.0, 3.0], [0, 0, 0, 0]]])
    q = np.array([qc * (1 - 1e-9), qc, qc * (1 + 1e-9), 0.05])
    for stacks in (plain, doubled):
        assert np.all(np.isfinite(parratt(q, stacks)))
    np.testing.assert_allclose(parratt(q, doubled), parratt(q, plain), rtol=1e-9)
