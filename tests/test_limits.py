"""Limits, rate limits and ownership of jobs."""

import numpy as np
import pytest

from reflect_core import jobs
from reflect_core.accounts import rate_limit
from reflect_core.accounts.access import AccessError, User
from reflect_core.accounts.limits import (
    LOCAL,
    SHARED,
    LimitError,
    check_film,
    check_spec,
    check_upload_size,
    limits_for,
    spec_violations,
)
from reflect_core.ml.settings import parameter_count_for
from reflect_core.ml.spec import SpecError, TrainSpec
from reflect_core.physics.film import film_from_dict

ALICE, BOB, ADMIN = User("alice"), User("bob"), User("root", "admin")


def test_profiles_match_the_published_table():
    assert (LOCAL.curves, LOCAL.film_layers, LOCAL.batch_size, LOCAL.epochs, LOCAL.cnn_layers, LOCAL.dropout,
            LOCAL.latent_dim, LOCAL.ae_mlp_epochs, LOCAL.concurrent_jobs, LOCAL.upload_bytes) == (
        100_000, 20, 512, 1000, 20, 0.9, 128, 500, 2, 200_000_000)
    assert (SHARED.curves, SHARED.film_layers, SHARED.batch_size, SHARED.epochs, SHARED.cnn_layers, SHARED.dropout,
            SHARED.latent_dim, SHARED.ae_mlp_epochs, SHARED.concurrent_jobs, SHARED.upload_bytes) == (
        5_000, 10, 64, 50, 12, 0.5, 32, 100, 1, 50_000_000)
    assert (LOCAL.q_points, LOCAL.profile_points, LOCAL.channels, LOCAL.hidden, LOCAL.parameters,
            LOCAL.dataset_bytes, LOCAL.exact_curves) == (20_000, 5_000, 512, 8192, 200_000_000, 4_000_000_000, 20_000)
    assert (SHARED.q_points, SHARED.profile_points, SHARED.channels, SHARED.hidden, SHARED.parameters,
            SHARED.dataset_bytes, SHARED.exact_curves) == (2_000, 2_000, 128, 2048, 20_000_000, 100_000_000, 500)


def test_who_gets_which_profile():
    assert limits_for("local", "admin", login_enabled=False) is LOCAL
    assert limits_for("alice", "user", login_enabled=True) is SHARED
    assert limits_for("alice", "user", login_enabled=True, allowlist=["alice"]) is LOCAL
    assert limits_for("root", "admin", login_enabled=True) is LOCAL


ELEVEN_LAYERS = {"layers": [{"name": f"l{i}", "sld": 1.0, "thickness": 10.0, "roughness": 1.0} for i in range(11)]}


def test_every_violation_is_listed_in_one_message():
    spec = TrainSpec.parse({"dataset": {"n": 6000,
                                        "prior": {"film": ELEVEN_LAYERS,
                                                  "bounds": [{"i": 1, "par": "thickness", "bounds": [5.0, 20.0]}]}},
                            "model": {"layers": 13, "dropout": 0.6}, "training": {"epochs": 51, "batch_size": 65}})
    with pytest.raises(LimitError) as info:
        check_spec(spec, SHARED, running_jobs=1)
    message = str(info.value)
    for part in ("curves 6,000 > 5,000", "film layers 11 > 10", "batch size 65 > 64", "epochs 51 > 50",
                 "CNN layers 13 > 12", "dropout 0.6 > 0.5", "concurrent jobs"):
        assert part in message, part
    assert len(info.value.violations) == 7
    assert spec_violations(spec, LOCAL) == []


def test_uploaded_arrays_count_against_the_curve_limit(tmp_path, monkeypatch):
    """The curve count of uploaded arrays is read from the stored array itself: a spec
    cannot carry more curves than the profile allows under another key."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    folder = tmp_path / "uploads" / "alice" / "arrays" / "big"
    folder.mkdir(parents=True)
    np.save(folder / "nr_train.npy", np.zeros((5_001, 2, 4), np.float32))
    np.save(folder / "sld_train.npy", np.zeros((5_001, 2, 6), np.float32))
    spec = TrainSpec.parse({"dataset": {"arrays": "uploads/alice/arrays/big"}, "model": {"layers": 1}})
    assert spec_violations(spec, SHARED, owner="alice") == ["curves 5,001 > 5,000"]
    assert spec_violations(spec, LOCAL, owner="alice") == []
    with pytest.raises(SpecError, match="not one of bob's array sets"):  # measured in the owner's folder only
        spec_violations(spec, SHARED, owner="bob")


def test_grid_network_and_dataset_size_are_limited_and_listed_together():
    """Q points, profile points, channels, dense width, parameters (counted, not built), the
    dataset's bytes and exact-mode curves: all in the table, all in one message."""
    spec = TrainSpec.parse({"dataset": {"n": 5000, "nq": 2001, "n_profile": 2001, "exact": True},
                            "model": {"layers": 4, "channels": 129, "hidden": 2049}})
    found = spec_violations(spec, SHARED)
    params = parameter_count_for(spec.model, 2001, 2001)
    assert params > SHARED.parameters
    assert found == ["Q points 2,001 > 2,000", "profile points 2,001 > 2,000", "channels 129 > 128",
                     "dense width 2,049 > 2,048", f"network parameters {params:,} > 20,000,000",
                     f"dataset size (bytes) {5000 * 2 * 4002 * 4:,} > 100,000,000", "exact-mode curves 5,000 > 500"]
    with pytest.raises(LimitError) as info:
        check_spec(spec, SHARED)
    assert info.value.violations == found and all(part in str(info.value) for part in found)
    assert spec_violations(spec, LOCAL) == []


def test_pyreflect_cnn_is_counted_without_building_it():
    spec = TrainSpec.parse({"model": {"arch": "pyreflect_cnn", "layers": 12}})
    assert spec_violations(spec, SHARED) == ["network parameters 155,285,778 > 20,000,000"]
    assert spec_violations(spec, LOCAL) == []


def test_film_layer_limit():
    film = film_from_dict({"layers": [{"sld": 1.0, "thickness": 10.0}] * 11})
    check_film(film, LOCAL)
    with pytest.raises(LimitError, match="film layers 11 > 10"):
        check_film(film, SHARED)


def test_upload_size_limit():
    check_upload_size(50_000_000, SHARED, "a.npy")
    with pytest.raises(LimitError, match="a.npy: 50.0 MB > 50 MB"):
        check_upload_size(50_000_001, SHARED, "a.npy")


def test_rate_limit_says_when_to_try_again(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    for k in range(5):
        rate_limit.hit("alice", "submit", now=1000.0 + k)
    with pytest.raises(rate_limit.RateLimitError, match=r"at most 5 per minute. Try again in 55 s"):
        rate_limit.hit("alice", "submit", now=1005.0)
    rate_limit.hit("bob", "submit", now=1005.0)  # per user
    rate_limit.hit("alice", "submit", now=1061.0)  # the window slid
    for _ in range(10):
        rate_limit.hit("alice", "upload", now=2000.0)
    with pytest.raises(rate_limit.RateLimitError, match="uploads"):
        rate_limit.hit("alice", "upload", now=2001.0)
    rate_limit.hit("alice", "upload", per_minute=20, now=2001.0)  # configurable


def test_user_b_cannot_touch_user_a_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # stays queued: no worker needed
    spec = {"dataset": {"n": 50}, "model": {"layers": 1, "channels": 4, "hidden": 8},
            "training": {"epochs": 1}}
    run_id = jobs.submit(TrainSpec.parse(spec), ALICE.name, "alice's run")
    assert [r.run_id for r in jobs.runs_for(BOB)] == []
    assert [r.run_id for r in jobs.runs_for(ADMIN)] == [run_id]
    for action in ("cancel", "pause", "stop", "resume", "retry", "delete"):
        with pytest.raises(AccessError, match="is not yours"):
            getattr(jobs, action)(run_id, user=BOB)
    with pytest.raises(AccessError):
        jobs.get(run_id, user=BOB)
    assert jobs.get(run_id, user=ALICE).state == "queued"
    jobs.cancel(run_id, user=ADMIN)
    assert jobs.get(run_id, user=ALICE).state == "cancelled"
