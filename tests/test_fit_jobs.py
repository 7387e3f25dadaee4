"""Background fits (reflect_core.analysis.fit_runs): a real fit in a runner process, its progress,
stop, a runner that dies or hangs, the request's checks, and the per-user folders."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.accounts.limits import LOCAL, SHARED
from reflect_core.analysis import fit_runs
from reflect_core.analysis.fit_runs.runner import claim
from reflect_core.base.errors import InvalidInput, LimitError
from reflect_core.base.storage import data_dir, read_json
from reflect_core.formats.curves import Curve
from reflect_core.physics.film import Film, Layer
from reflect_core.physics.simulate import film_reflectivity
from reflect_core.store import history

ALICE, BOB = User("alice"), User("bob")
FILM = Film((Layer("Si", 2.07, 0, 0, 3), Layer("PMMA", 1.0, 0, 100, 3), Layer("air", 0)))
Q = np.geomspace(0.01, 0.2, 80)


def curve() -> Curve:
    """Noiseless synthetic data with 5 % error bars and 3 % dQ/Q: the true film is the fit's minimum."""
    r = film_reflectivity(FILM, Q, dq_abs=0.03 * Q)
    return Curve(Q, r, 0.05 * r, 0.03 * Q)


def request(mcmc_steps=0, start_thickness=90.0, **changes) -> dict:
    film = FILM.with_layer(1, thickness=start_thickness).to_dict()
    return {"kind": "fit", "curves": ["synthetic.txt"], "search": "local", "mcmc_steps": mcmc_steps, "seed": 1,
            "start": {"kind": "film", "label": "test"},
            "config": {"film": film, "bounds": [{"i": 1, "par": "thickness", "bounds": [60, 140]}],
                       "scale": {"value": 1.0, "bounds": None}, "background": {"value": 0.0, "bounds": None}},
            **changes}


def long_request() -> dict:
    """A fit that runs for minutes (the longest MCMC the local profile allows), to stop or kill."""
    return request(mcmc_steps=fit_runs.mcmc_step_limit(LOCAL))


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield tmp_path
    for user in (ALICE, BOB):  # never leave a runner behind
        for run in fit_runs.list_fits(user):
            ref = read_json(run.run_dir / "state.json")["ref"]
            if run.state == "running" and ref and int(ref) != os.getpid():
                os.kill(int(ref), signal.SIGKILL)


def wait(user, run_id, states, timeout=45, until=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = fit_runs.get(user, run_id)
        if run.state in states and (until is None or until(run)):
            return run
        time.sleep(0.2)
    raise AssertionError(f"fit {run_id} is {run.state} ({run.error}); log: {run.progress.log_tail[-5:]}")


def test_a_small_real_fit_completes_in_a_runner_process_with_its_progress():
    run_id = fit_runs.submit(ALICE, request(), [curve()], name="one layer")
    run = fit_runs.get(ALICE, run_id)
    assert run.state == "running" and run.run_dir.parent == data_dir() / "fits" / "alice"
    pid = int(read_json(run.run_dir / "state.json")["ref"])
    assert pid != os.getpid()
    run = wait(ALICE, run_id, {"completed", "failed"})
    assert run.state == "completed", run.error
    fit = fit_runs.result_json(run)
    thickness = next(p for p in fit["parameters"] if p["par"] == "thickness")
    # Noiseless data: the minimum is the true 100 Å; 0.5 Å is far inside what 5 % error bars resolve.
    assert thickness["value"] == pytest.approx(100.0, abs=0.5)
    # Data from this app's engine, fit by refnx's: they agree to ~0.1 % (0.02 σ of a 5 % error bar).
    assert fit["n_free"] == 1 and fit["n_points"] == Q.size and fit["chi2_reduced"] < 0.01
    assert run.result["chi2_reduced"] == fit["chi2_reduced"]  # the summary the page lists
    progress = read_json(run.run_dir / "progress.json")
    assert progress["phase"] and progress["heartbeat"] >= run.started
    assert any("completed" in line for line in progress["log_tail"])
    [curve_back] = fit_runs.curves_of(run)
    np.testing.assert_array_equal(curve_back.r, curve().r)  # the fit's own copy, full precision

    # Saved: a "fit" history record whose files outlive the run.
    record = fit_runs.save_fit(ALICE, run, "kept fit")
    assert record["kind"] == "fit" and record["files"].startswith("history/fits/alice/")
    fit_runs.delete(ALICE, run_id)
    saved = fit_runs.load_saved(history.get(ALICE, record["id"]))
    assert saved.fit == fit and record["summary"]["chi2_reduced"] == fit["chi2_reduced"]
    assert saved.request.curves == ("synthetic.txt",) and saved.curves[0].q.size == Q.size
    with pytest.raises(InvalidInput, match="not inside its owner's folder"):
        fit_runs.load_saved({**record, "owner": "bob"})  # files outside the named owner's folders
    # Its figures, as History shows them and a bundle exports them (the fitted curve recomputed from fit.json).
    from reflect_core.viz.report import figures_for

    figures = figures_for(history.get(ALICE, record["id"]), None)
    assert set(figures) == {"data_and_fit", "residuals", "sld_profile", "correlations"}
    assert figures_for({**record, "owner": "bob"}, None) == {}  # a record pointing elsewhere: no figures


def test_stop_ends_a_running_fit():
    run_id = fit_runs.submit(ALICE, long_request(), [curve()])
    wait(ALICE, run_id, {"running"}, until=lambda run: run.progress.phase == "MCMC" and run.progress.done > 0)
    fit_runs.stop(ALICE, run_id)
    assert fit_runs.get(ALICE, run_id).requested == "stop"
    run = wait(ALICE, run_id, {"stopped", "failed", "completed"})
    assert run.state == "stopped", run.error
    assert not (run.run_dir / fit_runs.FIT_JSON).exists()
    with pytest.raises(jobs.JobError, match="it is stopped"):
        fit_runs.stop(ALICE, run_id)
    fit_runs.delete(ALICE, run_id)
    assert fit_runs.list_fits(ALICE) == []


def test_a_killed_runner_is_reported_dead():
    run_id = fit_runs.submit(ALICE, long_request(), [curve()])
    pid = int(read_json(fit_runs.get(ALICE, run_id).run_dir / "state.json")["ref"])
    os.kill(pid, signal.SIGKILL)
    run = wait(ALICE, run_id, {"failed"}, timeout=10)
    assert "stopped unexpectedly" in run.error and "SIGKILL" in run.error
    with pytest.raises(jobs.JobError, match="failed"):
        fit_runs.stop(ALICE, run_id)


def test_a_silent_runner_is_reported_dead_by_its_heartbeat(monkeypatch):
    run_id = fit_runs.submit(ALICE, long_request(), [curve()])
    pid = int(read_json(fit_runs.get(ALICE, run_id).run_dir / "state.json")["ref"])
    wait(ALICE, run_id, {"running"}, until=lambda run: run.progress.heartbeat is not None)
    os.kill(pid, signal.SIGSTOP)  # alive, but it beats no more
    try:
        monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "1")
        run = wait(ALICE, run_id, {"failed"}, timeout=10)
        assert "no heartbeat" in run.error
    finally:
        os.kill(pid, signal.SIGKILL)


def test_the_request_is_checked_with_messages_that_name_the_field():
    with pytest.raises(InvalidInput, match="mcmc_steps"):
        fit_runs.submit(ALICE, request(mcmc_steps=SHARED_STEPS + 1), [curve()], limits=SHARED)
    with pytest.raises(InvalidInput, match="search"):
        fit_runs.submit(ALICE, request(search="fastest"), [curve()])
    bad = request()
    bad["config"]["bounds"][0]["par"] = "colour"
    with pytest.raises(InvalidInput, match="bounds"):
        fit_runs.submit(ALICE, bad, [curve()])
    with pytest.raises(InvalidInput, match="2 were given"):
        fit_runs.submit(ALICE, request(), [curve(), curve()])
    assert fit_runs.list_fits(ALICE) == []  # nothing was started


SHARED_STEPS = fit_runs.mcmc_step_limit(SHARED)


def started_and_killed(user) -> fit_runs.FitRun:
    """A fit whose runner was killed at once: a run directory with a final state, in no time."""
    run_id = fit_runs.submit(user, long_request(), [curve()])
    os.kill(int(read_json(fit_runs.get(user, run_id).run_dir / "state.json")["ref"]), signal.SIGKILL)
    return wait(user, run_id, {"failed"}, timeout=10)


def test_running_fits_are_limited_per_user():
    assert fit_runs.active_fit_limit(SHARED) == 1 and fit_runs.active_fit_limit(LOCAL) >= 1
    first = fit_runs.submit(ALICE, long_request(), [curve()], limits=LOCAL)
    with pytest.raises(LimitError, match="at most 1"):
        fit_runs.submit(ALICE, request(), [curve()], limits=SHARED)
    fit_runs.submit(BOB, request(), [curve()], limits=SHARED)  # another user's fits do not count
    os.kill(int(read_json(fit_runs.get(ALICE, first).run_dir / "state.json")["ref"]), signal.SIGKILL)
    wait(ALICE, first, {"failed"}, timeout=10)
    fit_runs.submit(ALICE, request(), [curve()], limits=SHARED)  # a dead runner frees its place


def runner(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reflect_core.analysis.fit_runs.runner", str(path)], cwd=ROOT,
                          env={**os.environ, "REFLECT_DATA_DIR": str(data_dir())}, capture_output=True, text=True,
                          timeout=30)


def test_fits_stay_in_their_owners_folder(data):
    run = started_and_killed(ALICE)
    for action in (fit_runs.get, fit_runs.stop, fit_runs.delete):  # bob sees no fit of alice's
        with pytest.raises(fit_runs.FitRunNotFound):
            action(BOB, run.run_id)
    assert fit_runs.list_fits(BOB) == []
    with pytest.raises(jobs.JobError, match="not a run id"):
        fit_runs.get(ALICE, f"../bob/{run.run_id}")
    # A link in bob's folder to alice's fit is not followed out of bob's folder.
    os.symlink(run.run_dir, fit_runs.user_folder("bob") / run.run_id)
    with pytest.raises(InvalidInput, match="not inside"):
        fit_runs.get(BOB, run.run_id)
    assert fit_runs.list_fits(BOB) == []
    # The runner itself runs only a fit directory of its owner's folder.
    outside = runner(data / "runs")
    assert outside.returncode == 2 and "not a fit run directory" in outside.stderr
    (data / "fits" / "bob" / run.run_id).unlink()
    moved = data / "fits" / "bob" / run.run_id  # alice's fit moved into bob's folder: not claimed there
    run.run_dir.rename(moved)
    state = jobs.runfiles.write_state(moved, read_json(moved / "state.json"), state="running", ref=str(os.getpid()))
    with pytest.raises(jobs.JobError, match="names 'alice' as its owner"):
        claim(moved)  # this process as the runner the state waits for
    jobs.runfiles.write_state(moved, state, state="failed")


def test_a_fit_stops_at_its_time_limit_and_shared_users_cannot_ask_for_more():
    run_id = fit_runs.submit(ALICE, {**long_request(), "time_limit_s": 2}, [curve()])
    run = wait(ALICE, run_id, {"stopped", "failed", "completed"})
    assert run.state == "stopped", run.error
    assert any("time limit" in line for line in run.progress.log_tail)
    assert fit_runs.FitRequest.parse(request(), SHARED).time_limit_s == fit_runs.time_limit_s(SHARED) == 20 * 60
    with pytest.raises(InvalidInput, match="time_limit_s"):
        fit_runs.submit(ALICE, {**request(), "time_limit_s": 3600}, [curve()], limits=SHARED)
