"""The kernels' numpy twins give the compiled kernels' numbers, and the warm-up compiles in
the background without making a page wait (reflect_core/physics/warmup.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, random_stacks

from reflect_core.physics import kernel, profile, resolution, warmup
from reflect_core.physics.profile import film_microslabs, sld_profile
from reflect_core.physics.reflectivity import reflectivity


def both(compute, monkeypatch):
    """(compute() with the compiled kernels, compute() as while a warm-up runs: with their numpy twins)."""
    compiled = compute()
    with monkeypatch.context() as m:
        m.setattr(warmup, "use_compiled", lambda: False)
        twin = compute()
    return compiled, twin


def test_parratt_twin_equals_the_compiled_kernel_on_random_films(monkeypatch):
    rng = np.random.default_rng(20261207)
    q = np.geomspace(0.002, 0.6, 400)
    stacks = [random_stacks(rng, 150, n) for n in (2, 3, 6, 12)]
    compiled, twin = both(lambda: [kernel.parratt(q, s) for s in stacks], monkeypatch)
    compiled, twin = np.concatenate(compiled), np.concatenate(twin)
    # The set holds what the claim covers: total reflection, absorbing layers, R down to 1e-12 and below.
    assert np.sum(compiled > 0.999) > 500 and compiled.min() < 1e-12
    assert all(np.any(s[:, 1:-1, 1] > 0) for s in stacks[1:])
    assert np.max(np.abs(twin / compiled - 1)) <= 1e-10


def test_per_film_q_and_same_medium_interfaces(monkeypatch):
    rng = np.random.default_rng(3)
    stacks = random_stacks(rng, 20, 5)
    stacks[:, 2, :2] = stacks[:, 1, :2]  # flat stretch: an interface with no contrast (the kernel's a == 0 branch)
    q = np.sort(rng.uniform(0.003, 0.3, (20, 64)), axis=1)
    compiled, twin = both(lambda: kernel.parratt(q, stacks), monkeypatch)
    assert np.max(np.abs(twin / compiled - 1)) <= 1e-10


def test_smearing_with_critical_edges_and_profiles_match(monkeypatch):
    rng = np.random.default_rng(11)
    stacks = random_stacks(rng, 40, 6)
    q = np.geomspace(0.004, 0.25, 150)
    resolution._cached_plan.cache_clear()  # each side builds its own weights
    r_compiled, r_twin = both(lambda: reflectivity(stacks, q, 0.05), monkeypatch)
    films, _ = resolution.smearing_plan(q, q * 0.05, thickness=2000).edge_nodes(stacks)
    assert films.size > 10  # the edge clusters are exercised
    assert np.max(np.abs(r_twin / r_compiled - 1)) <= 1e-10
    for compute in (lambda: sld_profile(stacks)[1], lambda: sld_profile(stacks, absorption=True)[1],
                    lambda: film_microslabs(stacks)):
        compiled, twin = both(compute, monkeypatch)
        # SLDs are O(10) in 1e-6 Å⁻²; microslab means divide integrals of O(1e4) by 0.5 Å.
        np.testing.assert_allclose(twin, compiled, rtol=0, atol=1e-10)


def test_sharp_interfaces_in_the_profile_twin(monkeypatch):
    stacks = np.array([[[2.07, 0, 0, 0.0], [4.0, 0.1, 20.0, 0.0], [0.0, 0, 0, 0]]])
    z = np.array([-5.0, 0.0, 10.0, 20.0, 25.0])
    compiled, twin = both(lambda: profile.sld_profile(stacks, z)[1], monkeypatch)
    np.testing.assert_array_equal(twin, compiled)
    assert twin[0, 1] == pytest.approx((2.07 + 4.0) / 2)  # on a sharp interface: the midpoint


def test_a_process_without_a_warm_up_runs_compiled_and_never_waits():
    assert warmup.use_compiled() and warmup.wait_for_warmup(timeout=0)


CHILD = r"""
import json, sys, threading, time
import numpy as np
from reflect_core.physics import warmup
from reflect_core.physics.presets import PRESETS
from reflect_core.physics.simulate import CurveSettings, film_profile, film_reflectivity

out = {"cached_before": warmup.kernels_compiled(), "cache_dir": str(warmup.kernel_cache_dir())}
t0 = time.perf_counter()
warmup.start_warmup()
warmup.start_warmup()  # idempotent
out["start_s"] = time.perf_counter() - t0
out["threads"] = sum(t.name == "numba-warmup" for t in threading.enumerate())
film, q = next(iter(PRESETS.values())), np.geomspace(0.0081, 0.1975, 308)
r = film_reflectivity(film, q, CurveSettings(dq=0.03))
film_profile(film)
out["page_done_while_compiling"] = not warmup._done.is_set()
out["compiled_during"] = warmup.use_compiled()
from reflect_core.data.generate import dataset_from_dict
from reflect_core.ml.estimates import generation_seconds
generation_seconds(dataset_from_dict({"n": 100}), probe=4)  # times the compiled kernels: waits for them
out["estimate_waited"] = warmup._done.is_set()
out["ok"] = warmup.wait_for_warmup(600)
out["compiled_after"] = warmup.use_compiled()
out["same_curve"] = float(np.max(np.abs(film_reflectivity(film, q, CurveSettings(dq=0.03)) / r - 1)))
out["cached_after"] = warmup.kernels_compiled()
# Compiled by a child process; this one only loaded them from the cache.
out["loaded_not_compiled"] = all(sum(k.stats.cache_hits.values()) > 0 and not sum(k.stats.cache_misses.values())
                                 for k in warmup._kernels())
print(json.dumps(out))
"""


def run_child(cache_dir) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_warm_up_compiles_in_the_background_and_fills_the_cache(tmp_path):
    cold = run_child(tmp_path)
    assert cold["cache_dir"].startswith(str(tmp_path))
    assert not cold["cached_before"]
    assert cold["start_s"] < 0.5 and cold["threads"] == 1
    # The curve and profile came from the numpy twins before compiling ended (it takes seconds; they, ms).
    assert cold["page_done_while_compiling"] and not cold["compiled_during"]
    assert cold["estimate_waited"]
    assert cold["ok"] and cold["compiled_after"] and cold["cached_after"]
    assert cold["same_curve"] <= 1e-10 and cold["loaded_not_compiled"]
    assert sorted(p.suffix for p in tmp_path.rglob("*.nbi")) == [".nbi"] * 4
    warm = run_child(tmp_path)  # a new process: the kernels are known to be on disk before anything runs
    assert warm["cached_before"] and warm["ok"] and warm["same_curve"] <= 1e-10


def test_kernel_cache_dir_follows_numba_cache_dir_and_is_none_without_caching(tmp_path):
    code = "from reflect_core.physics import warmup; print(warmup.kernel_cache_dir())"
    for env, expect in (({"NUMBA_CACHE_DIR": str(tmp_path)}, str(tmp_path)), ({"NUMBA_DISABLE_JIT": "1"}, "None")):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **env})
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().startswith(expect)
