"""Smeared reflectivity against a brute-force Gaussian convolution using refnx's kernel."""

import numpy as np
import pytest
from conftest import DEFAULT_Q, random_stacks
from refnx.reflect import _creflect

from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.refnx_bridge import to_refnx_slabs
from reflect_core.physics.resolution import FWHM_TO_SIGMA, critical_edge, resolution_fwhm, smearing_plan

BRUTE_POINTS = 2001  # over ±6σ: a step of σ/167


def brute_force(stacks, q, sigma):
    """∫R(q')G(q'-q)dq' by the trapezoid rule on a very fine uniform grid over ±6σ,
    with the critical edge (where R has a square-root kink) added as a node."""
    x = np.linspace(-6, 6, BRUTE_POINTS)
    edges = critical_edge(stacks)
    out = np.empty((len(stacks), q.size))
    for b, w in enumerate(to_refnx_slabs(stacks)):
        for i, (qi, si) in enumerate(zip(q, sigma)):
            nodes = qi + si * x
            if abs(edges[b] - qi) < 6 * si:
                nodes = np.sort(np.append(nodes, edges[b]))
            nodes = nodes[nodes > 1e-6]
            g = np.exp(-0.5 * ((nodes - qi) / si) ** 2)
            r = _creflect.abeles(nodes, w)
            out[b, i] = np.trapezoid(g * r, nodes) / np.trapezoid(g, nodes)
    return out


def sample_points(rng, q, edge, n_random=40, n_edge=8):
    """Random Q points plus those nearest the film's critical edge (the hard ones)."""
    picks = set(rng.choice(q.size, n_random, replace=False).tolist())
    if np.isfinite(edge):
        picks |= set(np.argsort(np.abs(q - edge))[:n_edge].tolist())
    return np.array(sorted(picks))


def test_constant_dq_over_q_matches_brute_force_on_500_films():
    rng = np.random.default_rng(7)
    stacks = random_stacks(rng, 500, 6)
    dq = 0.0295
    smeared = reflectivity(stacks, DEFAULT_Q, dq)
    sigma = DEFAULT_Q * dq * FWHM_TO_SIGMA
    edges = critical_edge(stacks)
    errors, below_edge, low_r = [], 0, 1.0
    for b in range(len(stacks)):
        pts = sample_points(rng, DEFAULT_Q, edges[b])
        ref = brute_force(stacks[b:b + 1], DEFAULT_Q[pts], sigma[pts])[0]
        errors.append(np.abs(smeared[b, pts] / ref - 1))
        below_edge += int(np.sum(DEFAULT_Q[pts] < edges[b]))
        low_r = min(low_r, ref.min())
    errors = np.concatenate(errors)
    assert below_edge > 500 and low_r < 1e-8  # the set covers total reflection and deep tails
    p99, worst = np.percentile(errors, 99), errors.max()
    print(f"smeared vs brute force: p99 {p99:.2e}, max {worst:.2e} over {errors.size} points")
    assert p99 <= 0.005
    assert worst <= 0.02


def test_per_point_dq_matches_brute_force():
    rng = np.random.default_rng(8)
    stacks = random_stacks(rng, 60, 5)
    q = np.sort(np.concatenate([np.geomspace(0.008, 0.03, 80), np.geomspace(0.022, 0.09, 80),
                                np.geomspace(0.07, 0.25, 80)]))  # overlapping segments, as measured
    fwhm = np.where(q < 0.03, 0.02, 0.04) * q + 2e-4
    smeared = reflectivity(stacks, q, dq_abs=fwhm)
    ref = brute_force(stacks, q[::6], (fwhm * FWHM_TO_SIGMA)[::6])
    errors = np.abs(smeared[:, ::6] / ref - 1)
    assert np.percentile(errors, 99) <= 0.005
    assert errors.max() <= 0.02


def test_zero_resolution_is_exact_and_partial_zero_is_a_delta():
    rng = np.random.default_rng(9)
    stacks = random_stacks(rng, 4, 5)
    np.testing.assert_array_equal(reflectivity(stacks, DEFAULT_Q, 0.0), reflectivity(stacks, DEFAULT_Q))
    fwhm = DEFAULT_Q * 0.03
    fwhm[::2] = 0.0
    mixed = reflectivity(stacks, DEFAULT_Q, dq_abs=fwhm)
    np.testing.assert_allclose(mixed[:, ::2], reflectivity(stacks, DEFAULT_Q[::2]), rtol=1e-12)


def test_smearing_plan_is_cached_and_bounded():
    fwhm = resolution_fwhm(DEFAULT_Q, 0.0295)
    plan = smearing_plan(DEFAULT_Q, fwhm)
    assert smearing_plan(DEFAULT_Q, fwhm) is plan
    # ~3 nodes per σ over the log range: a few hundred, not thousands
    assert 300 < plan.q_fine.size < 1500


@pytest.mark.parametrize("dq, dq_abs, message", [
    (-0.01, None, "≥ 0"), (float("nan"), None, "finite"),
    (0.0, np.full(5, -1e-4), "≥ 0"), (0.0, np.ones(3), "values"),
])
def test_bad_resolution_rejected(dq, dq_abs, message):
    with pytest.raises(ValueError, match=message):
        resolution_fwhm(np.linspace(0.01, 0.1, 5), dq, dq_abs)


def test_thick_films_keep_their_fringes():
    # Fringes of a 2-5 µm stack are finer than the default grid would resolve at high Q:
    # the plan adds nodes for the batch's thickness instead of aliasing them.
    rng = np.random.default_rng(21)
    stacks = random_stacks(rng, 40, 4, thickness=(500.0, 1700.0), roughness=(0.0, 5.0))
    q = np.geomspace(0.01, 0.3, 200)
    smeared = reflectivity(stacks, q, 0.02)
    picks = np.arange(0, 200, 5)
    ref = brute_force(stacks, q[picks], q[picks] * 0.02 * FWHM_TO_SIGMA)
    errors = np.abs(smeared[:, picks] / ref - 1)
    assert np.percentile(errors, 99) <= 0.005 and errors.max() <= 0.02
