"""The Train page's estimates: sizes counted from the settings, times measured on models small
enough to build, and nothing the size of the job allocated (before: the estimate built the real
model, over 8 GB at the maxima)."""

import json
import os
import subprocess
import sys

import pytest

from reflect_core.ml.estimates import model_size, multiply_adds, training_seconds
from reflect_core.ml.settings import ModelSettings, TrainSettings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, resource
from reflect_core.data.generate import dataset_from_dict, default_dataset_dict
from reflect_core.ml.estimates import generation_seconds, model_size, training_seconds
from reflect_core.ml.settings import ModelSettings, TrainSettings

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux

# Warm up: torch's and numba's own first-use allocations are not the estimate's.
training_seconds(ModelSettings(layers=1, channels=4, hidden=8), TrainSettings(epochs=1, batch_size=4), 8, 32, 32)
generation_seconds(dataset_from_dict({**default_dataset_dict(), "n": 10}), probe=2)
base = peak_mb()
out = {}
for name, settings, training, nq, nz in [
        ("widget maxima", ModelSettings(layers=12, channels=512, hidden=8192, dropout=0.5),
         TrainSettings(epochs=50, batch_size=64), 20000, 5000),
        ("physical maxima", ModelSettings(layers=64, channels=512, hidden=8192), TrainSettings(batch_size=512),
         20000, 5000),
        ("pyreflect", ModelSettings(arch="pyreflect_cnn", layers=12), TrainSettings(batch_size=64), 308, 900)]:
    params, _ = model_size(settings, nq, nz)
    seconds = training_seconds(settings, training, 4000, nq, nz)
    out[name] = {"params": params, "seconds": seconds, "peak_mb": peak_mb() - base}
config = dataset_from_dict({**default_dataset_dict(), "n": 5000, "nq": 20000, "n_profile": 5000, "exact": True})
out["generation"] = {"seconds": generation_seconds(config), "peak_mb": peak_mb() - base}
print(json.dumps(out))
"""


def test_estimates_at_the_maxima_allocate_nothing_big():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["widget maxima"]["params"] == 309_957_512  # 1.2 GB of weights, never built
    assert result["pyreflect"]["params"] == 155_285_778
    for name, measured in result.items():
        assert measured["peak_mb"] < 300, (name, measured)
        assert measured["seconds"] > 0, (name, measured)


def test_a_small_model_is_timed_itself_and_a_larger_one_costs_more():
    small, big = ModelSettings(layers=2, channels=8, hidden=32), ModelSettings(layers=6, channels=128, hidden=4096)
    training = TrainSettings(epochs=2, batch_size=32)
    assert model_size(small, 308, 900)[1] == model_size(small, 308, 900)[0] * 4
    assert multiply_adds(big, 2000, 2000) > 100 * multiply_adds(small, 308, 900)
    assert training_seconds(big, training, 1000, 2000, 2000) > training_seconds(small, training, 1000, 308, 900)


def test_counts_match_the_built_model():
    torch = pytest.importorskip("torch")  # noqa: F841 - building needs it
    from reflect_core.ml.models import build_model, parameter_count

    for settings, nq, nz in [(ModelSettings(), 308, 900), (ModelSettings(layers=9, channels=6, hidden=20), 1500, 70)]:
        assert model_size(settings, nq, nz)[0] == parameter_count(build_model(settings, nq, nz))
