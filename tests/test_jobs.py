"""The local job backend: store, scheduler and real worker processes running a tiny real training job."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reflect_core import jobs
from reflect_core.base.storage import StorageError, atomic_write_json, read_json
from reflect_core.jobs.worker import LOG_TAIL_LINES, FileControl, FileReporter
from reflect_core.ml.spec import SpecError, TrainSpec

ROOT = Path(__file__).resolve().parents[1]


def train_spec(epochs: int, checkpoint_every: int = 0) -> TrainSpec:
    """A real training job that takes a few milliseconds per epoch."""
    return TrainSpec.parse(raw_spec(epochs, checkpoint_every))


def raw_spec(epochs: int, checkpoint_every: int = 0) -> dict:
    return {
        "kind": "train",
        "dataset": {"n": 64, "seed": 1, "nq": 32, "n_profile": 50},
        "model": {"arch": "compact_cnn", "layers": 1, "channels": 4, "hidden": 16},
        "training": {"epochs": epochs, "batch_size": 16, "patience": 0, "checkpoint_every": checkpoint_every},
    }


QUICK = train_spec(3)
ENDLESS = train_spec(100_000, checkpoint_every=1)  # runs until paused, stopped or killed


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """A fresh data directory; spawned workers inherit the environment."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    # The test machine is shared: one thread per worker, or torch's thread pool
    # spins against the other processes and an epoch takes 40 times longer.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("REFLECT_HEARTBEAT_TIMEOUT", raising=False)
    monkeypatch.delenv("REFLECT_MAX_CONCURRENT", raising=False)
    yield tmp_path
    _end_all_workers()


def _end_all_workers():
    """Leave no worker behind: cancel what waits, kill what runs (by the pid each run recorded)."""
    for _ in range(20):
        runs = jobs.list_runs()
        for info in runs:
            if info.state == "queued":
                jobs.cancel(info.run_id)
            elif info.state == "running":
                try:
                    os.kill(info.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        jobs.tick(max_concurrent=0)  # reaps them and marks them failed
        if not any(info.state in ("queued", "running") for info in jobs.list_runs()):
            return
        time.sleep(0.1)


def wait_for(run_id, condition, timeout=25.0, tick=True, what="condition"):
    """Poll like the UI does (tick, then read) until ``condition(info)``; fail with the run's story."""
    deadline = time.monotonic() + timeout
    while True:
        if tick:
            jobs.tick()
        info = jobs.get(run_id)
        if condition(info):
            return info
        if time.monotonic() > deadline:
            log = (info.run_dir / jobs.LOG).read_text() if (info.run_dir / jobs.LOG).exists() else ""
            out = (info.run_dir / jobs.WORKER_OUT).read_text() if (info.run_dir / jobs.WORKER_OUT).exists() else ""
            pytest.fail(f"{what} not reached in {timeout} s: state {info.state}, error {info.error}, "
                        f"progress {info.progress}\nlog:\n{log[-2000:]}\nworker.out:\n{out[-2000:]}")
        time.sleep(0.05)


def state_is(*states):
    return lambda info: info.state in states


def training_epoch_at_least(n):
    return lambda info: info.state == "running" and info.progress.epoch >= n


def snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def wait_exit_status(pid, timeout=10.0):
    """Exit status of a child that should end on its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    pytest.fail(f"process {pid} did not exit in {timeout} s")


# ---- storage -------------------------------------------------------------------------------------


def test_storage_round_trip_and_clear_errors(tmp_path):
    path = tmp_path / "a.json"
    assert read_json(path) is None
    assert read_json(path, default={}) == {}
    atomic_write_json(path, {"x": [1, 2.5]})
    assert read_json(path) == {"x": [1, 2.5]}
    assert [p.name for p in tmp_path.iterdir() if p.name != "runs"] == ["a.json"]  # no temp file left
    path.write_text('{"x": ')
    with pytest.raises(StorageError, match=r"a\.json is not valid JSON"):
        read_json(path)
    with pytest.raises(StorageError, match=r"cannot write .*missing/b\.json: No such file or directory"):
        atomic_write_json(tmp_path / "missing" / "b.json", {})


# ---- reporter and control, in this process ---------------------------------------------------------


def test_reporter_writes_progress_and_a_resumed_run_continues_its_curves(tmp_path):
    reporter = FileReporter(tmp_path)
    reporter.phase("training", 1, 10)
    for epoch in (1, 2, 3):
        reporter.epoch(epoch, 5, 1.0 / epoch, 2.0 / epoch)
    for i in range(LOG_TAIL_LINES + 5):
        reporter.log(f"line {i}")
    reporter.flush()
    progress = read_json(tmp_path / jobs.PROGRESS)
    assert (progress["phase"], progress["epoch"], progress["epochs_total"]) == ("training", 3, 5)
    assert progress["train_loss"] == [1.0, 0.5, 1 / 3]
    assert len(progress["log_tail"]) == LOG_TAIL_LINES and progress["log_tail"][-1].endswith("line 54")
    assert time.time() - progress["heartbeat"] < 5
    assert "epoch 2/5: train 0.5, validation 1" in (tmp_path / jobs.LOG).read_text()

    # Resumed from a checkpoint taken after epoch 2: epoch 3 is trained again and replaces its old value.
    resumed = FileReporter(tmp_path)
    resumed.epoch(3, 5, 0.25, 0.5)
    assert read_json(tmp_path / jobs.PROGRESS)["train_loss"] == [1.0, 0.5, 0.25]


def test_control_follows_control_json(tmp_path):
    control = FileControl(tmp_path)
    assert control.requested() is None
    atomic_write_json(tmp_path / jobs.CONTROL, {"action": "pause"})
    assert control.requested() == "pause"
    atomic_write_json(tmp_path / jobs.CONTROL, {"action": "stop"})
    assert control.requested() == "stop"
    (tmp_path / jobs.CONTROL).unlink()
    assert control.requested() is None
    control.force_stop()  # what SIGTERM does
    assert control.requested() == "stop"


# ---- store and queue, no worker --------------------------------------------------------------------


def test_submit_refuses_bad_input():
    with pytest.raises(jobs.JobError, match="needs a TrainSpec"):
        jobs.submit(raw_spec(3), owner="alice")  # specs are parsed at the boundary, once
    with pytest.raises(jobs.JobError, match="needs an owner"):
        jobs.submit(QUICK, owner="")
    with pytest.raises(SpecError, match=r"training\.epochs"):
        train_spec(0)
    with pytest.raises(jobs.RunNotFound, match="no run"):
        jobs.get("20000101-000000-000000-0000")
    with pytest.raises(jobs.JobError, match="is not a run id"):
        jobs.get("../etc")
    assert jobs.list_runs() == []


def test_queue_order_positions_cancel_and_refusals(monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # nothing starts until the test says so
    a, b, c = (jobs.submit(QUICK, owner="alice", name=n) for n in "abc")
    d = jobs.submit(QUICK, owner="bob")
    assert [jobs.get(r).queue_position for r in (a, b, c, d)] == [1, 2, 3, 4]
    assert [info.run_id for info in jobs.list_runs()] == [d, c, b, a]  # newest first
    assert [info.name for info in jobs.list_runs(owner="alice")] == ["c", "b", "a"]
    assert jobs.get(a).actions == ("cancel", "delete")

    jobs.cancel(b)
    info = jobs.get(b)
    assert (info.state, info.queue_position, info.actions) == ("cancelled", None, ("retry", "delete"))
    assert [jobs.get(r).queue_position for r in (a, c, d)] == [1, 2, 3]
    for action, message in [
        (jobs.cancel, f"cannot cancel run {b}: it is cancelled (only queued runs can be cancelled)"),
        (jobs.resume, f"cannot resume run {b}: it is cancelled"),
    ]:
        with pytest.raises(jobs.JobError, match=re.escape(message)):
            action(b)
    for action in (jobs.pause, jobs.stop, jobs.resume, jobs.retry):
        with pytest.raises(jobs.JobError, match=f"run {a}: it is queued"):
            action(a)

    jobs.delete(d)
    assert not (jobs.runs_dir() / d).exists()
    with pytest.raises(jobs.JobError, match=f"no run {d}"):
        jobs.get(d)

    jobs.retry(b)  # back in the queue, behind the others
    assert [jobs.get(r).queue_position for r in (a, c, b)] == [1, 2, 3]


# ---- real workers ----------------------------------------------------------------------------------


def test_job_runs_to_completion_and_records_its_result():
    run_id = jobs.submit(QUICK, owner="alice", name="quick")
    info = wait_for(run_id, state_is("completed", "failed"), what="completion")
    assert info.state == "completed", info.error
    assert info.result["n_curves"] == 64
    assert (info.run_dir / "model" / "model.json").is_file()  # the metrics live there, not in the result
    assert (info.progress.epoch, info.progress.epochs_total, len(info.progress.val_loss)) == (3, 3, 3)
    assert info.attempts == 1 and info.ended >= info.started >= info.created
    assert (info.run_dir / "model").is_dir() and (info.run_dir / "data").is_dir()
    assert not (info.run_dir / jobs.CONTROL).exists()
    assert "completed" in info.progress.log_tail[-1]
    for action in (jobs.pause, jobs.stop, jobs.cancel, jobs.resume):
        with pytest.raises(jobs.JobError, match=f"run {run_id}: it is completed"):
            action(run_id)


def test_stop_ends_the_job_and_the_worker_starts_the_next_one_without_any_ui():
    first = jobs.submit(ENDLESS, owner="alice")
    second = jobs.submit(QUICK, owner="alice")
    assert (jobs.get(first).state, jobs.get(second).queue_position) == ("running", 1)
    wait_for(first, training_epoch_at_least(1), what="first epoch")
    with pytest.raises(jobs.JobError, match=f"cannot delete run {first}: it is running"):
        jobs.delete(first)

    jobs.stop(first)
    assert jobs.get(first).requested == "stop" or jobs.get(first).state == "stopped"
    # No tick from here on: the stopped worker itself must start the queued job.
    wait_for(first, state_is("stopped"), tick=False, what="stopped")
    info = wait_for(second, state_is("completed", "failed"), tick=False, what="second job done")
    assert info.state == "completed", info.error
    stopped = jobs.get(first)
    assert stopped.actions == ("retry", "delete") and stopped.error is None
    with pytest.raises(jobs.JobError, match=r"only paused runs, and failed runs with a checkpoint, can be resumed"):
        jobs.resume(first)


def test_ticks_from_many_processes_run_the_queue_one_at_a_time_in_order(monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    run_ids = [jobs.submit(QUICK, owner="alice") for _ in range(3)]
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "1")
    ticker = (
        "import time; from reflect_core import jobs\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline and any(i.state in ('queued', 'running') for i in jobs.list_runs()):\n"
        "    jobs.tick(); time.sleep(0.02)\n"
    )
    tickers = [subprocess.Popen([sys.executable, "-c", ticker], cwd=ROOT) for _ in range(3)]
    for process in tickers:
        assert process.wait(timeout=90) == 0
    runs = [jobs.get(run_id) for run_id in run_ids]
    assert [(info.state, info.attempts) for info in runs] == [("completed", 1)] * 3
    for earlier, later in zip(runs, runs[1:]):
        assert earlier.ended <= later.started  # one at a time, in submission order


def test_pause_then_resume_continues_from_the_checkpoint():
    run_id = jobs.submit(train_spec(400), owner="alice")
    wait_for(run_id, training_epoch_at_least(2), what="second epoch")
    jobs.pause(run_id)
    info = wait_for(run_id, state_is("paused", "completed", "failed"), what="paused")
    assert info.state == "paused", "the job ended before the pause arrived"
    assert (info.run_dir / jobs.CHECKPOINT).is_file()
    assert info.actions == ("resume", "delete")
    paused_at = info.progress.epoch
    first_attempt = info.ended - info.started
    assert info.compute_seconds(time.time() + 100) == pytest.approx(first_attempt)  # a paused run's clock stops

    jobs.resume(run_id)
    resumed = wait_for(run_id, state_is("running", "completed", "failed"), what="resumed")
    # The second attempt starts from the paused progress: its speed is measured on its own work only.
    assert resumed.attempt_start["phase"] in ("training", "") and resumed.attempt_start["done"] >= 0
    info = wait_for(run_id, state_is("completed", "failed"), what="completion after resume")
    assert info.state == "completed", info.error
    assert info.attempts == 2
    # Compute time counts both attempts, not only the one since the resume.
    assert info.compute_seconds(time.time()) == pytest.approx(first_attempt + (info.ended - info.started))
    assert len(info.progress.train_loss) == 400  # one curve across both attempts
    log = (info.run_dir / jobs.LOG).read_text()
    assert f"resumed from checkpoint at epoch {paused_at}" in log
    assert not (info.run_dir / jobs.CHECKPOINT).exists()


def test_sigterm_acts_like_stop():
    run_id = jobs.submit(ENDLESS, owner="alice")
    info = wait_for(run_id, training_epoch_at_least(1), what="first epoch")
    os.kill(info.pid, signal.SIGTERM)
    info = wait_for(run_id, state_is("stopped", "failed"), what="stopped")
    assert info.state == "stopped", info.error


def test_local_backend_kill_ends_the_worker_like_stop():
    run_id = jobs.submit(ENDLESS, owner="alice")
    info = wait_for(run_id, training_epoch_at_least(1), what="first epoch")
    assert (info.backend, info.ref) == ("local", str(info.pid))
    jobs.backends.get("local").kill(info.ref)  # SIGTERM, then SIGKILL if it were still there after the grace
    info = wait_for(run_id, state_is("stopped", "failed"), what="stopped")
    assert info.state == "stopped", info.error
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)  # gone, and reaped


def test_killed_worker_is_detected_and_resumable_and_other_runs_are_untouched(monkeypatch):
    monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "3")
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "2")
    other = jobs.submit(QUICK, owner="bob")
    victim = jobs.submit(ENDLESS, owner="alice")
    wait_for(other, state_is("completed"), what="other job done")
    other_files = snapshot(jobs.get(other).run_dir)
    info = wait_for(victim, lambda i: training_epoch_at_least(2)(i) and (i.run_dir / jobs.CHECKPOINT).exists(),
                    what="a checkpoint")

    os.kill(info.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    info = wait_for(victim, state_is("failed"), timeout=3.0, what="failure detected")
    assert time.monotonic() - killed_at < 3.0
    assert info.error == "worker process exited unexpectedly (killed by SIGKILL)"
    assert "scheduler: worker process exited unexpectedly" in (info.run_dir / jobs.LOG).read_text()
    assert info.actions == ("resume", "retry", "delete")
    assert snapshot(jobs.get(other).run_dir) == other_files

    jobs.resume(victim)
    wait_for(victim, lambda i: any("resumed from checkpoint at epoch" in line for line in i.progress.log_tail),
             what="resumed from the checkpoint")
    jobs.stop(victim)
    wait_for(victim, state_is("stopped"), what="stopped")
    assert snapshot(jobs.get(other).run_dir) == other_files


def test_silent_worker_fails_on_heartbeat_timeout_and_then_exits_by_itself(monkeypatch):
    monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "3")
    run_id = jobs.submit(ENDLESS, owner="alice")
    info = wait_for(run_id, training_epoch_at_least(1), what="first epoch")
    os.kill(info.pid, signal.SIGSTOP)  # alive, but silent
    try:
        info = wait_for(run_id, state_is("failed"), timeout=10.0, what="heartbeat timeout")
    finally:
        os.kill(info.pid, signal.SIGCONT)
    assert info.error.startswith("worker stopped responding (no heartbeat for ")
    # Woken up, the worker sees that the scheduler gave up on it and exits without writing its outcome.
    assert wait_exit_status(info.pid) == 3
    assert jobs.get(run_id).state == "failed"


def test_another_process_sees_the_running_job_and_can_stop_it():
    run_id = jobs.submit(ENDLESS, owner="alice")
    wait_for(run_id, training_epoch_at_least(1), what="first epoch")
    script = (
        "import json; from reflect_core import jobs;"
        "[info] = jobs.list_runs(owner='alice');"
        "print(json.dumps({'id': info.run_id, 'state': info.state, 'epoch': info.progress.epoch,"
        " 'losses': len(info.progress.train_loss), 'beat': info.progress.heartbeat}));"
        "jobs.stop(info.run_id)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert (seen["id"], seen["state"]) == (run_id, "running")
    assert seen["epoch"] >= 1 and seen["losses"] == seen["epoch"] and time.time() - seen["beat"] < 5
    wait_for(run_id, state_is("stopped"), what="stopped from the other process")


def test_worker_of_another_process_that_dies_is_detected(monkeypatch):
    """The server that started the worker is gone (a restarted Streamlit): the worker is not our child."""
    monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "3")
    script = ("from reflect_core import jobs; from reflect_core.ml.spec import TrainSpec; "
              f"print(jobs.submit(TrainSpec.parse({raw_spec(100_000, checkpoint_every=1)!r}), owner='alice'))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    info = wait_for(run_id, training_epoch_at_least(1), what="first epoch")
    os.kill(info.pid, signal.SIGKILL)
    info = wait_for(run_id, state_is("failed"), timeout=3.0, what="failure detected")
    assert info.error == "worker process exited unexpectedly"


def test_failure_is_recorded_with_its_traceback_and_cannot_resume_without_a_checkpoint(monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    run_id = jobs.submit(QUICK, owner="alice")
    (jobs.get(run_id).run_dir / "data").write_text("a file where the data directory should be")
    jobs.tick(max_concurrent=1)
    info = wait_for(run_id, state_is("failed", "completed"), what="failure")
    assert info.state == "failed"
    assert info.error.startswith("FileExistsError: ")
    assert "Traceback (most recent call last)" in (info.run_dir / jobs.LOG).read_text()
    assert info.actions == ("retry", "delete")
    with pytest.raises(jobs.JobError, match="it has no checkpoint to resume from; retry it instead"):
        jobs.resume(run_id)


def test_retry_starts_over_but_reuses_the_generated_data():
    run_id = jobs.submit(QUICK, owner="alice")
    info = wait_for(run_id, state_is("completed", "failed"), what="completion")
    assert info.state == "completed", info.error
    data_files = {p.name: p.stat().st_mtime_ns for p in (info.run_dir / "data").iterdir()}
    (info.run_dir / "model" / "left-over").write_text("from the first attempt")

    jobs.retry(run_id)
    info = wait_for(run_id, state_is("completed", "failed"), what="completion after retry")
    assert info.state == "completed", info.error
    assert info.attempts == 2
    assert {p.name: p.stat().st_mtime_ns for p in (info.run_dir / "data").iterdir()} == data_files
    assert not (info.run_dir / "model" / "left-over").exists()
    assert len(info.progress.train_loss) == 3  # progress started over
    assert "retry: starting again" in (info.run_dir / jobs.LOG).read_text()

    jobs.delete(run_id)
    assert not info.run_dir.exists()
    assert jobs.list_runs() == []


def test_workers_run_below_the_servers_priority():
    """A worker takes only the CPU the server's page reruns leave (bench/bench_load.py: ten sessions beside a job)."""
    import subprocess
    import sys

    code = ("import os; from reflect_core.jobs.worker import _yield_to_pages, WORKER_NICENESS; "
            "before = os.getpriority(os.PRIO_PROCESS, 0); _yield_to_pages(); "
            "print(os.getpriority(os.PRIO_PROCESS, 0) - before, WORKER_NICENESS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == int(out[1]) > 0


def test_time_left_after_a_resume_is_measured_on_the_resumed_attempts_own_work(tmp_path):
    from reflect_core.jobs.queries import Progress, RunInfo

    def run(done, start, started_ago, phase="training"):
        now = 1_000_000.0
        return now, RunInfo(
            run_id="r", owner="a", name=None, state="running", created=0.0, started=now - started_ago, ended=None,
            attempts=2, backend="local", ref=None, pid=None, error=None, result=None, queue_position=None,
            requested=None, actions=(), progress=Progress(phase=phase, done=done, total=100), run_dir=tmp_path,
            compute_s=30.0, attempt_start=start)

    # Paused at 60/100 after 30 s; resumed 10 s ago and now at 70: 10 units in 10 s, 30 left, 30 s.
    now, info = run(70, {"phase": "training", "done": 60}, 10.0)
    assert info.seconds_left(now) == pytest.approx(30.0)  # counting all 70 as this attempt's would say 4.3 s
    assert info.compute_seconds(now) == pytest.approx(40.0)
    now, info = run(60, {"phase": "training", "done": 60}, 2.0)
    assert info.seconds_left(now) is None  # nothing done yet in this attempt: no guess
    now, info = run(20, {"phase": "training", "done": 60}, 10.0, phase="generating")  # a phase begun afresh
    assert info.seconds_left(now) == pytest.approx(40.0)
