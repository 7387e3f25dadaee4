"""The Modal backend against a fake Modal client boundary: function lookup, spawn, FunctionCall
polling with the real exception types, a Dict and cancel. The fake runs the real remote body
(``jobs.remote_run.run_remote``, the real pipeline) in a thread against a fake run store, and the
runs go through the real job store and scheduler. Nothing here reaches Modal."""

import os
import subprocess
import sys
import time

import modal.exception
import pytest
from conftest import ROOT
from modal_fakes import FakeDict, FakeModal, FakeRunStore

from reflect_core import jobs
from reflect_core.accounts.limits import LOCAL, SHARED, spec_violations
from reflect_core.jobs.backends import BackendUnavailable
from reflect_core.jobs.backends.modal import ModalBackend
from reflect_core.jobs.remote_run import control_key, run_remote
from reflect_core.ml import costs
from reflect_core.ml.spec import GPU_TIERS, TrainSpec

SMALL = {"dataset": {"n": 64, "seed": 1, "nq": 32, "n_profile": 50},
         "model": {"layers": 1, "channels": 4, "hidden": 16},
         "training": {"epochs": 12, "batch_size": 16, "checkpoint_every": 1, "patience": 0}}
SPEC = TrainSpec.parse({**SMALL, "backend": "modal", "gpu": "L4"})


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("REFLECT_HEARTBEAT_TIMEOUT", raising=False)
    monkeypatch.delenv("REFLECT_MAX_CONCURRENT", raising=False)
    return tmp_path


@pytest.fixture
def fake(tmp_path):
    client = FakeModal(FakeRunStore(tmp_path / "hub"))
    backend = ModalBackend(client=client, run_store=client.store)
    backend.poll_interval_s = 0.0
    jobs.backends.register("modal", backend)
    yield client
    jobs.backends.unregister("modal")
    for call in client.calls.values():
        client.dict.cancelled.add(call.args[0])
        call.thread.join(30)


def until(run_id, states, timeout=90, check=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs.tick()
        info = jobs.get(run_id)
        if info.state in states and (check is None or check(info)):
            return info
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {jobs.get(run_id).state}: {jobs.get(run_id).error}")


def test_submit_progress_pause_resume_complete_and_results(fake):
    fake.dict.delay = 0.15
    run_id = jobs.submit(SPEC, owner="alice", name="on a GPU")
    info = jobs.get(run_id)
    assert (info.state, info.backend, info.ref) == ("running", "modal", f"{run_id}:fc-1")
    options, args = fake.spawns[0]
    assert options == {"gpu": "L4", "timeout": costs.TIMEOUT_S}
    assert args[0] == run_id and args[2] == "alice" and args[3] is False  # a fresh attempt
    assert TrainSpec.parse(args[1]) == SPEC

    info = until(run_id, {"running"}, check=lambda i: i.progress.epoch >= 2)
    assert len(info.progress.train_loss) >= 2 and info.progress.heartbeat
    jobs.pause(run_id)
    assert fake.dict[control_key(run_id)] == "pause"
    info = until(run_id, {"paused"})
    assert (info.run_dir / jobs.CHECKPOINT).is_file()  # the marker: the checkpoint is in the run store
    assert fake.store.get(run_id, "checkpoint.pt") and fake.store.get(run_id, "data/nr_train.npy")
    paused_at = info.progress.epoch
    assert 2 <= paused_at < 12 and any("paused" in line for line in info.progress.log_tail)

    fake.dict.delay = 0.0
    jobs.resume(run_id)
    info = jobs.get(run_id)
    assert (info.state, info.ref, info.attempts) == ("running", f"{run_id}:fc-2", 2)
    assert fake.spawns[1][1][3] is True and control_key(run_id) not in fake.dict  # resumes; old request gone
    info = until(run_id, {"completed"})
    assert info.error is None and info.result["epochs_run"] == 12 and info.result["n_curves"] == 64
    assert info.progress.epoch == 12 and len(info.progress.train_loss) == 12
    assert any("resumed from checkpoint" in line for line in fake.dict[run_id]["log_tail"])
    assert (info.run_dir / "model" / "model.json").is_file()  # fetched from the run store
    assert not (info.run_dir / jobs.CHECKPOINT).exists()
    assert fake.dict[run_id]["outcome"] == "completed"


def test_stop_ends_the_call_without_a_checkpoint(fake):
    fake.dict.delay = 0.15
    run_id = jobs.submit(SPEC, owner="alice")
    until(run_id, {"running"}, check=lambda i: i.progress.epoch >= 1)
    jobs.stop(run_id)
    info = until(run_id, {"stopped"})
    assert info.actions == ("retry", "delete")


def test_an_expired_call_is_gone_and_a_failed_call_fails(fake):
    fake.dict.delay = 0.15
    run_id = jobs.submit(SPEC, owner="alice")
    fake.calls["fc-1"].expired = True
    info = until(run_id, {"failed"})
    assert info.error == "the modal call fc-1 is gone (its results expired)"
    assert fake.cancels == ["fc-1"]  # given up on: cancelled

    jobs.retry(run_id)
    call = fake.calls["fc-2"]
    assert fake.spawns[1][1][3] is False  # a retry starts afresh
    call.raises = ValueError("CUDA error: out of memory")
    info = until(run_id, {"failed"})
    assert info.error == "the modal function raised ValueError: CUDA error: out of memory"

    jobs.retry(run_id)
    fake.calls["fc-3"].raises = modal.exception.FunctionTimeoutError("timed out")
    info = until(run_id, {"failed"})
    assert info.error.startswith("the modal call hit its 2 h time limit")


def test_unreachable_modal_is_a_passing_problem_and_polls_are_bounded(fake, monkeypatch):
    fake.dict.delay = 0.15
    run_id = jobs.submit(SPEC, owner="alice")
    fake.calls["fc-1"].raises = modal.exception.ConnectionError("could not connect")
    jobs.tick()
    info = jobs.get(run_id)
    assert info.state == "running"
    backend = jobs.backends.get("modal")
    with pytest.raises(BackendUnavailable, match="ConnectionError"):
        backend.poll(info.ref)
    fake.calls["fc-1"].raises = modal.exception.AuthError("bad token")
    with pytest.raises(BackendUnavailable, match="AuthError"):
        backend.poll(info.ref)

    def hangs(timeout=None):
        time.sleep(3)

    fake.calls["fc-1"].raises = None
    monkeypatch.setattr(fake.calls["fc-1"], "get", hangs)
    backend.call_timeout_s = 0.2
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="no answer"):
        backend.poll(info.ref)
    assert time.monotonic() - started < 1.5


def test_cancel_reaches_the_function_which_still_writes_its_final_state(fake):
    fake.dict.delay = 0.15
    run_id = jobs.submit(SPEC, owner="alice")
    until(run_id, {"running"}, check=lambda i: i.progress.epoch >= 1)
    backend = jobs.backends.get("modal")
    backend.kill(jobs.get(run_id).ref)
    call = fake.calls["fc-1"]
    call.thread.join(30)
    assert isinstance(call.error, modal.exception.InputCancellation)
    assert fake.dict[run_id]["outcome"] == "stopped"  # written in finally
    assert fake.store.flushes >= 1


def test_the_remote_body_runs_without_a_scheduler(tmp_path):
    store, channel = FakeRunStore(tmp_path / "hub"), FakeDict()
    spec = TrainSpec.parse({**SMALL, "training": {**SMALL["training"], "epochs": 2}, "backend": "modal"})
    out = run_remote("r1", spec.to_dict(), "bob", False, channel, store, heartbeat_s=0.1)
    assert out["outcome"] == "completed" and out["progress"]["epoch"] == 2
    assert (tmp_path / "hub" / "r1" / "model" / "model.json").is_file()
    bad = run_remote("r2", {"dataset": {"n": -1}}, "bob", False, channel, store)
    assert bad["outcome"] == "failed" and channel["r2"]["outcome"] == "failed"


def test_gpu_tiers_are_limited_per_profile_and_priced():
    assert LOCAL.gpu_tiers == GPU_TIERS and SHARED.gpu_tiers == ("T4", "L4")
    h100 = TrainSpec.parse({**SMALL, "backend": "modal", "gpu": "H100"})
    assert spec_violations(h100, LOCAL) == []
    assert spec_violations(h100, SHARED) == ["GPU tier H100 not allowed (allowed: T4, L4)"]
    assert spec_violations(SPEC, SHARED) == []
    assert set(costs.GPU_PRICE_PER_S) == set(GPU_TIERS)
    cheap, dear = costs.estimate("T4", 3600.0), costs.estimate("H100", 3600.0)
    assert 0 < cheap.usd < dear.usd and dear.max_usd == pytest.approx(costs.GPU_PRICE_PER_S["H100"] * 7200)
    assert costs.estimate("T4", 1e9).capped and "check https://modal.com/pricing" in cheap.describe()


def test_modal_jobs_imports_without_credentials_or_network():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["MODAL_CONFIG_PATH"] = "/nonexistent/modal.toml"
    code = "import modal_jobs; assert modal_jobs.app.name == 'reflect-ml'; print(modal_jobs.train_run)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "train_run" in done.stdout


def test_a_spec_on_uploaded_arrays_is_refused_on_modal(fake, tmp_path):
    backend = jobs.backends.get("modal")
    from reflect_core.ml.spec import ArraySource

    spec = TrainSpec(ArraySource("uploads/alice/arrays/x", 0.03), SPEC.model, SPEC.training, "modal", "T4")
    with pytest.raises(jobs.JobError, match="uploaded training arrays cannot train on Modal"):
        backend.launch(tmp_path, spec)
    assert fake.spawns == []


# ---- the Train page ------------------------------------------------------------------------------

@pytest.fixture
def page(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    def open_page(secrets: str):
        path = tmp_path / "secrets.toml"
        path.write_text(secrets)
        monkeypatch.setenv("REFLECT_SECRETS_FILE", str(path))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/train.py").run()
        assert not at.exception, at.exception
        return at

    yield open_page
    jobs.backends.unregister("modal")


def test_the_train_page_offers_modal_only_when_configured(page):
    at = page("")
    assert not jobs.backends.is_registered("modal")
    assert not [r for r in at.radio if r.label == "Run on"]
    assert at.session_state["train_spec"]["backend"] == "local"


def test_the_train_page_shows_the_tier_and_cost_before_submit(page):
    at = page('MODAL_TOKEN_ID = "ak-test"\nMODAL_TOKEN_SECRET = "as-test"\n')
    assert isinstance(jobs.backends.get("modal"), ModalBackend)
    assert "MODAL_TOKEN_ID" not in os.environ  # the test never hands a token to the modal client
    run_on = next(r for r in at.radio if r.label == "Run on")
    assert run_on.value == "local" and not any("Estimated cost" in i.value for i in at.info)
    run_on.set_value("modal").run()
    at.selectbox(key="train_gpu").set_value("L4").run()
    assert not at.exception, at.exception
    assert at.session_state["train_spec"]["backend"] == "modal" and at.session_state["train_spec"]["gpu"] == "L4"
    assert any(i.value.startswith("Estimated cost on L4: about $") for i in at.info)
    options = at.selectbox(key="train_gpu").options  # the local profile: every tier, with its price
    assert [o.split(" ")[0] for o in options] == list(GPU_TIERS) and options[0] == "T4 ($0.59/h)"
