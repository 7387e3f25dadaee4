"""Synthetic training sets: format, reproducibility, bounds, resume, memory, consistency."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from reflect_core.base.job_protocol import Paused
from reflect_core.data.generate import DatasetError, dataset_from_dict, default_dataset_dict, generate, pair_consistency

SIMPLE = {
    "film": {"layers": [{"name": "Si", "sld": 2.07, "roughness": 3},
                        {"name": "film", "sld": 4.0, "thickness": 100, "roughness": 5},
                        {"name": "air", "sld": 0.0}]},
    "bounds": [{"i": 1, "par": "thickness", "bounds": [50, 150]}, {"i": 1, "par": "sld", "bounds": [1, 6]},
               {"i": 0, "par": "roughness", "bounds": [1, 8]}],
}


def config(**overrides):
    return dataset_from_dict({**SIMPLE, "n": 400, "seed": 5, **overrides})


def load(path):
    return np.load(path / "nr_train.npy"), np.load(path / "sld_train.npy"), np.load(path / "params.npy")


def test_pyreflect_format_and_fixed_grids(tmp_path):
    nr, sld, params = load(generate(config(nq=120, n_profile=300), tmp_path))
    assert nr.shape == (400, 2, 120) and sld.shape == (400, 2, 300)
    assert nr.dtype == sld.dtype == np.float32
    assert np.all(nr[:, 0] == nr[0, 0]) and np.all(sld[:, 0] == sld[0, 0])  # one Q and one z grid
    assert sld[0, 0, 0] < 0 < sld[0, 0, -1]  # z = 0 at the substrate's top interface
    assert np.allclose(sld[:, 1, 0], 2.07, atol=1e-3)  # substrate bulk at the start of every profile
    assert len(np.unique(nr[:, 1], axis=0)) == 400  # all curves distinct


def test_default_prior_is_the_8_layer_stack_with_19_bounds():
    cfg = dataset_from_dict(default_dataset_dict())
    assert len(cfg.prior.film.layers) == 8 and len(cfg.prior.bounds) == 19
    assert cfg.q.size == 308 and cfg.n_profile == 900


def test_seeded_reproducible_and_bounds_respected(tmp_path):
    a = load(generate(config(), tmp_path / "a"))
    b = load(generate(config(), tmp_path / "b"))
    c = load(generate(config(seed=6), tmp_path / "c"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    params = a[2]
    assert params[:, 1, 2].min() >= 50 and params[:, 1, 2].max() <= 150
    assert params[:, 1, 0].min() >= 1 and params[:, 1, 0].max() <= 6
    assert np.all(params[:, 1, 3] == 5)  # no bound: keeps the film's value
    # Latin hypercube: each of the 400 strata of thickness holds exactly one film
    strata = np.floor((params[:, 1, 2] - 50) / 100 * 400).astype(int)
    assert len(np.unique(np.clip(strata, 0, 399))) == 400


def test_uniform_sampler_and_noise(tmp_path):
    clean = load(generate(config(sampler="uniform"), tmp_path / "clean"))[0]
    noisy = load(generate(config(sampler="uniform", noise={"counts_at_unity": 1e6, "background": 1e-6}),
                          tmp_path / "noisy"))[0]
    r, rn = clean[:, 1].astype(float), noisy[:, 1].astype(float)
    expected = (r + 1e-6) * 1e6
    pulls = (rn * 1e6 - expected) / np.sqrt(expected)
    high = expected > 100
    assert abs(np.mean(pulls[high])) < 0.05 and abs(np.std(pulls[high]) - 1) < 0.05  # Poisson statistics


def test_interrupted_generation_resumes_to_the_same_bytes(tmp_path):
    class PauseOnce:
        calls = 0

        def requested(self):
            self.calls += 1
            return "pause" if self.calls == 1 else None

    with pytest.raises(Paused):
        generate(config(), tmp_path / "x", control=PauseOnce(), chunk=100)
    generate(config(), tmp_path / "x", chunk=100)
    straight = load(generate(config(), tmp_path / "y"))
    assert all(np.array_equal(x, y) for x, y in zip(load(tmp_path / "x"), straight))


@pytest.mark.parametrize("overrides, message", [
    ({"n": 1}, "dataset.n"), ({"n": 10.5}, "dataset.n"), ({"qmin": 0.3}, "qmin"),
    ({"sampler": "sobol"}, "sampler"), ({"bounds": [{"i": 9, "par": "sld", "bounds": [1, 2]}]}, "layer index"),
    ({"bounds": [{"i": 1, "par": "thickness", "bounds": [5, 1]}]},
     r"prior: the thickness range of layer 1 \(.*; bound #1\): its min 5 is above its max 1"),
    ({"bounds": [{"i": 1, "par": "roughness", "bounds": [-1, 1]}]}, "negative"),
    ({"bounds": [{"i": 0, "par": "thickness", "bounds": [1, 2]}]}, "not used"),
    ({"bounds": [{"i": 1, "par": "sld", "bounds": [2, 2]}]}, "identical"),
    ({"colour": "red"}, "unknown"),
])
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(DatasetError, match=message):
        dataset_from_dict({**SIMPLE, **overrides})


def test_pairs_consistency_default_and_exact():
    default = pair_consistency(dataset_from_dict(default_dataset_dict()), n=100)
    exact = pair_consistency(dataset_from_dict({**default_dataset_dict(), "exact": True}), n=30)
    # Slab curves vs the curve of their own label profile on the very rough default prior:
    # about 1 % median (pyreflect's pairs: ~12 %, measured in bench/bench_generate.py).
    assert default["median"] < 0.03
    assert exact["max"] < 1e-4  # exact mode: the curve IS the label's curve (float32 label)


MEMORY_SCRIPT = """
import json, resource, sys, tempfile
from reflect_core.data.generate import dataset_from_dict, default_dataset_dict, generate
out = tempfile.mkdtemp(dir=sys.argv[1])
generate(dataset_from_dict({**default_dataset_dict(), "n": 600}), out + "/warm")  # compile and cache
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
generate(dataset_from_dict({**default_dataset_dict(), "n": 100000}), out + "/big")
print(json.dumps({"base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_100k_curves_stream_with_bounded_memory(tmp_path):
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    extra_mb = (usage["peak_kb"] - usage["base_kb"]) / 1024
    print(f"100,000 curves: peak RSS {usage['peak_kb'] / 1024:.0f} MB, {extra_mb:.0f} MB above the warm baseline")
    assert extra_mb < 1024
    nr = np.load(next(tmp_path.glob("*/big/nr_train.npy")), mmap_mode="r")
    assert nr.shape == (100000, 2, 308)
