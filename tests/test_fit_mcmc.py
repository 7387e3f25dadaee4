"""Posterior sampling after a fit (reflect_core.analysis.fit.mcmc): small and fast chains on the
synthetic curve of test_fit_engine, judged against the least-squares answer and the truth."""

import json

import numpy as np
import pytest
from test_fit_engine import FILM, PS_BOUNDS, synthetic

from reflect_core.analysis.fit import FitConfig, FitResult, run_fit
from reflect_core.analysis.fit.mcmc import MIN_BAND_FILMS
from reflect_core.base.job_protocol import Stopped
from reflect_core.physics.film import film_from_dict
from reflect_core.physics.profile import sld_profile

STEPS = 150  # × 16 walkers = 2,400 posterior evaluations, a few seconds


@pytest.fixture(scope="module")
def sampled():
    data = synthetic(FILM, seed=1)
    config = FitConfig.parse({"film": FILM, "bounds": PS_BOUNDS}, 1)
    return data, run_fit(config, [data], search="local", mcmc_steps=STEPS, seed=3)


def test_the_chain_is_described(sampled):
    _, result = sampled
    m = result.mcmc
    assert m["steps"] == STEPS and m["walkers"] == 16 and m["burn"] == STEPS // 4 and m["thin"] >= 1
    assert m["samples"] == len(range(m["burn"], STEPS, m["thin"])) * m["walkers"]
    assert 0.2 < m["acceptance"] < 0.9  # emcee's stretch move on a near-Gaussian posterior
    assert m["notes"] and "16 walkers" in m["notes"][0]


def test_posterior_medians_sit_at_the_least_squares_values(sampled):
    """With flat priors wider than the posterior and a near-Gaussian posterior, the median is the
    least-squares minimum and the 68 % interval is ±1σ. The chain's Monte Carlo error: ~16 walkers ×
    112 kept steps / τ (~10–15 steps) ≈ 150 independent samples, so medians scatter by ≈ 0.1σ
    and interval widths by ≈ 10–15 %: we allow 0.5σ and a factor 1.6."""
    _, result = sampled
    for p, m in zip(result.parameters, result.mcmc["parameters"]):
        assert m["name"] == p["name"]
        assert m["p2_5"] < m["p16"] < m["median"] < m["p84"] < m["p97_5"]
        assert abs(m["median"] - p["value"]) < 0.5 * p["stderr"], (p, m)
        half = (m["p84"] - m["p16"]) / 2
        assert 1 / 1.6 < half / p["stderr"] < 1.6, (p, m)


def test_the_sld_band_holds_the_true_profile(sampled):
    _, result = sampled
    band = {k: np.asarray(v) for k, v in result.mcmc["sld_band"].items()}
    assert result.mcmc["band_films"] >= MIN_BAND_FILMS
    assert np.all(band["lo95"] <= band["lo68"]) and np.all(band["lo68"] <= band["median"])
    assert np.all(band["median"] <= band["hi68"]) and np.all(band["hi68"] <= band["hi95"])
    _, truth = sld_profile(film_from_dict(FILM).as_array()[None], band["z"])
    inside = (truth[0] >= band["lo95"] - 1e-9) & (truth[0] <= band["hi95"] + 1e-9)
    # The fit lies within ~1σ of the truth (test_fit_engine), so the 95 % band holds it nearly everywhere.
    assert inside.mean() > 0.95, inside.mean()
    # ... and the band is narrow: the data pin the profile to a few 0.01 × 10⁻⁶ Å⁻² in the bulk.
    assert np.median(band["hi95"] - band["lo95"]) < 0.1


def test_mcmc_survives_json(sampled):
    data, result = sampled
    d = json.loads(json.dumps(result.to_json()))
    back = FitResult.from_json(d, [data])
    assert back.to_json()["mcmc"] == d["mcmc"]
    np.testing.assert_array_equal(back.mcmc["sld_band"]["median"], result.mcmc["sld_band"]["median"])
    assert len(d["mcmc"]["sld_band"]["z"]) == len(d["mcmc"]["sld_band"]["median"])


def test_a_seed_repeats_the_chain_and_a_stop_ends_it():
    data = synthetic(FILM, seed=2)
    config = FitConfig.parse({"film": FILM, "bounds": PS_BOUNDS[:2]}, 1)
    first, second = (run_fit(config, [data], search="local", mcmc_steps=20, seed=5).to_json()["mcmc"]
                     for _ in range(2))
    assert first == second

    class StopInMcmc:
        phases = []

        def phase(self, name, done=0, total=0):
            self.phases.append(name)

        def log(self, message):
            pass

        def requested(self):
            return "stop" if "MCMC" in self.phases else None

    control = StopInMcmc()
    with pytest.raises(Stopped, match="MCMC"):
        run_fit(config, [data], search="local", mcmc_steps=2000, reporter=control, control=control)
