"""The job-backend seam: a fake remote backend (in-process, no network) registered as "modal"
drives runs through the same store and scheduler as the local one.

The fake behaves like a remote function call: its worker cannot see the run's files, so
its progress and outcome exist only on the fake's side until the scheduler polls them.
"""

import os
import time

import pytest

from reflect_core import jobs
from reflect_core.base.errors import NotFound, ReflectError
from reflect_core.base.storage import atomic_write_json, read_json
from reflect_core.jobs.backends import Backend, BackendUnavailable, Poll
from reflect_core.ml.spec import TrainSpec

SMALL = {"dataset": {"n": 64, "seed": 1, "nq": 32, "n_profile": 50},
         "model": {"layers": 1, "channels": 4, "hidden": 16}, "training": {"epochs": 3, "batch_size": 16}}
REMOTE = TrainSpec.parse({**SMALL, "backend": "modal", "gpu": "T4"})
LOCAL = TrainSpec.parse(SMALL)


class FakeCall:
    """One remote function call: what its worker has reported so far, kept on the remote side."""

    def __init__(self, run_dir, spec):
        self.run_dir, self.spec = run_dir, spec
        self.progress = None
        self.outcome = None  # Poll.ended(...) once the worker has returned
        self.requests = []
        self.gone = False  # e.g. its results expired
        self.poll_raises = None

    def report(self, epoch: int, total: int = 3) -> None:
        self.progress = {"phase": "training", "done": epoch, "total": total, "epoch": epoch, "epochs_total": total,
                         "train_loss": [1.0 / e for e in range(1, epoch + 1)],
                         "val_loss": [2.0 / e for e in range(1, epoch + 1)],
                         "log_tail": [f"epoch {epoch}/{total}"], "heartbeat": time.time()}

    def save_checkpoint(self) -> None:
        """What the backend's checkpoint sync does: the checkpoint lands in the run directory."""
        (self.run_dir / jobs.CHECKPOINT).write_bytes(b"weights")

    def end(self, outcome: str, error=None, result=None) -> None:
        self.outcome = Poll.ended(outcome, error=error, result=result, progress=self.progress)


class FakeRemote(Backend):
    name = "modal"
    remote = True

    def __init__(self, poll_interval_s: float = 0.0):
        self.poll_interval_s = poll_interval_s
        self.calls: dict[str, FakeCall] = {}
        self.polls = 0
        self.killed = []
        self.launch_error = None

    def launch(self, run_dir, spec):
        if self.launch_error:
            raise self.launch_error
        ref = f"fc-{len(self.calls) + 1}"
        self.calls[ref] = FakeCall(run_dir, spec)
        return ref

    def poll(self, ref):
        self.polls += 1
        call = self.calls[ref]
        if call.poll_raises:
            raise call.poll_raises
        if call.gone:
            return Poll.gone(f"the modal call {ref} is gone (its results expired)")
        return call.outcome or Poll.running(call.progress)

    def request(self, ref, action):
        self.calls[ref].requests.append(action)

    def kill(self, ref):
        self.killed.append(ref)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REFLECT_HEARTBEAT_TIMEOUT", raising=False)
    monkeypatch.delenv("REFLECT_MAX_CONCURRENT", raising=False)
    return tmp_path


@pytest.fixture
def fake():
    backend = FakeRemote()
    jobs.backends.register("modal", backend)
    yield backend
    jobs.backends.unregister("modal")


def test_an_unconfigured_backend_is_refused_at_submit():
    with pytest.raises(jobs.JobError, match="^the modal backend is not configured$"):
        jobs.submit(REMOTE, owner="alice")
    assert jobs.list_runs() == []


def test_remote_run_goes_through_every_state(fake):
    run_id = jobs.submit(REMOTE, owner="alice", name="on a GPU")
    info = jobs.get(run_id)
    assert (info.state, info.backend, info.ref, info.pid, info.attempts) == ("running", "modal", "fc-1", None, 1)
    call = fake.calls["fc-1"]
    assert call.spec == REMOTE and call.run_dir == info.run_dir
    assert not (info.run_dir / jobs.WORKER_OUT).exists()  # no local process

    call.report(1)
    assert jobs.get(run_id).progress.epoch == 0  # nothing arrives before the scheduler polls
    jobs.tick()
    progress = jobs.get(run_id).progress
    assert (progress.epoch, progress.train_loss, progress.log_tail) == (1, [1.0], ["epoch 1/3"])

    jobs.pause(run_id)
    assert call.requests == ["pause"] and jobs.get(run_id).requested == "pause"
    jobs.tick()
    assert jobs.get(run_id).state == "running"  # until the worker says it has paused
    call.save_checkpoint()
    call.end("paused")
    jobs.tick()
    info = jobs.get(run_id)
    assert (info.state, info.requested, info.actions) == ("paused", None, ("resume", "delete"))
    assert not (info.run_dir / jobs.CONTROL).exists()

    jobs.resume(run_id)
    info = jobs.get(run_id)
    assert (info.state, info.ref, info.attempts) == ("running", "fc-2", 2)
    resumed = fake.calls["fc-2"]
    resumed.report(2)
    jobs.tick()
    assert jobs.get(run_id).progress.epoch == 2
    resumed.report(3)
    resumed.end("completed", result={"n_curves": 64})
    jobs.tick()
    info = jobs.get(run_id)
    assert (info.state, info.result, info.error, info.progress.epoch) == ("completed", {"n_curves": 64}, None, 3)
    assert "scheduler: the modal worker reported completed" in (info.run_dir / jobs.LOG).read_text()
    assert fake.killed == []


@pytest.mark.parametrize("how", ["poll raises", "call gone"])
def test_a_lost_remote_call_fails_the_run_which_resumes_from_its_checkpoint(fake, how):
    run_id = jobs.submit(REMOTE, owner="alice")
    call = fake.calls["fc-1"]
    call.report(2)
    call.save_checkpoint()
    jobs.tick()
    if how == "poll raises":
        call.poll_raises = RuntimeError("FunctionCall fc-1 raised ConnectionResetError")
        expected = "lost the modal worker fc-1: RuntimeError: FunctionCall fc-1 raised ConnectionResetError"
    else:
        call.gone = True
        expected = "the modal call fc-1 is gone (its results expired)"
    jobs.tick()
    info = jobs.get(run_id)
    assert (info.state, info.error) == ("failed", expected)
    assert info.actions == ("resume", "retry", "delete")
    assert fake.killed == ["fc-1"]  # a remote worker cannot see that it was given up on
    assert f"scheduler: {expected}" in (info.run_dir / jobs.LOG).read_text()

    jobs.resume(run_id)
    assert (jobs.get(run_id).state, jobs.get(run_id).ref) == ("running", "fc-2")


def test_a_lost_call_without_a_checkpoint_can_only_be_retried(fake):
    run_id = jobs.submit(REMOTE, owner="alice")
    fake.calls["fc-1"].gone = True
    jobs.tick()
    info = jobs.get(run_id)
    assert info.state == "failed" and info.actions == ("retry", "delete")


def test_passing_poll_errors_are_tolerated_until_the_worker_is_overdue(fake, monkeypatch):
    monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "0.5")
    run_id = jobs.submit(REMOTE, owner="alice")
    fake.calls["fc-1"].poll_raises = BackendUnavailable("modal: service unavailable")
    jobs.tick()
    assert jobs.get(run_id).state == "running"
    time.sleep(0.6)
    jobs.tick()
    info = jobs.get(run_id)
    assert info.state == "failed"
    assert info.error.startswith("lost contact with the modal worker (no answer for ")
    assert info.error.endswith("(last poll: modal: service unavailable)")


def test_a_remote_worker_that_stops_beating_is_given_up_on(fake, monkeypatch):
    monkeypatch.setenv("REFLECT_HEARTBEAT_TIMEOUT", "0.5")
    run_id = jobs.submit(REMOTE, owner="alice")
    call = fake.calls["fc-1"]
    call.report(1)
    jobs.tick()
    time.sleep(0.6)  # alive by the backend's word, but silent: no new heartbeat
    jobs.tick()
    info = jobs.get(run_id)
    assert info.state == "failed" and info.error.startswith("worker stopped responding (no heartbeat for ")
    assert fake.killed == ["fc-1"]


def test_remote_polling_is_rate_bounded(fake):
    fake.poll_interval_s = 60.0
    run_id = jobs.submit(REMOTE, owner="alice")
    for _ in range(50):  # fifty page polls within the interval, from any number of tabs
        jobs.tick()
        jobs.get(run_id)
        jobs.list_runs()
    assert fake.polls == 1
    state = read_json(jobs.get(run_id).run_dir / jobs.STATE)
    assert time.time() - state["polled_at"] < 60
    fake.poll_interval_s = 0.0
    jobs.tick()
    assert fake.polls == 2


def test_a_process_without_the_backend_leaves_its_runs_alone(fake):
    run_id = jobs.submit(REMOTE, owner="alice")
    jobs.backends.unregister("modal")
    for _ in range(3):
        jobs.tick()
    assert jobs.get(run_id).state == "running" and fake.polls == 0
    with pytest.raises(jobs.JobError, match="the modal backend is not configured"):
        jobs.stop(run_id)


def test_a_backend_that_cannot_launch_fails_the_run_and_the_queue_moves_on(fake, monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    first = jobs.submit(REMOTE, owner="alice")
    second = jobs.submit(REMOTE, owner="alice")
    fake.launch_error = RuntimeError("no GPU quota")
    jobs.tick(max_concurrent=1)
    assert jobs.get(first).error == "could not start a worker on the modal backend: RuntimeError: no GPU quota"
    assert jobs.get(second).state == "failed"
    fake.launch_error = None
    jobs.retry(first)
    assert jobs.get(first).state == "queued"
    jobs.tick(max_concurrent=1)
    assert (jobs.get(first).state, jobs.get(first).ref) == ("running", "fc-1")


def test_a_state_written_before_backends_reads_as_local_and_its_worker_can_claim_it(monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    run_id = jobs.submit(LOCAL, owner="alice")
    path = jobs.run_dir(run_id)
    old = read_json(path / jobs.STATE)
    del old["backend"], old["ref"]
    atomic_write_json(path / jobs.STATE, {**old, "state": "running", "pid": os.getpid(), "started": time.time(),
                                          "attempts": 1})
    info = jobs.get(run_id)
    assert (info.backend, info.ref, info.pid) == ("local", str(os.getpid()), os.getpid())
    jobs.tick()  # this process is alive and the attempt has just started: nothing to do
    assert jobs.get(run_id).state == "running"

    claimed = jobs.claim(path)  # this process is the worker: its ref is its pid
    assert claimed.attempt == 1 and jobs.is_current(claimed)
    with pytest.raises(jobs.JobError, match="not waiting for worker fc-9"):
        jobs.claim(path, ref="fc-9")
    assert jobs.finish(claimed, "completed", result={"ok": True})
    assert (jobs.get(run_id).state, jobs.get(run_id).result) == ("completed", {"ok": True})


def test_submit_under_a_reserved_run_id(monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    run_id = jobs.new_run_id()
    assert jobs.submit(LOCAL, owner="alice", run_id=run_id) == run_id
    assert jobs.get(run_id).state == "queued"
    with pytest.raises(jobs.JobError, match=f"run {run_id} already exists"):
        jobs.submit(LOCAL, owner="alice", run_id=run_id)
    with pytest.raises(jobs.JobError, match="is not a run id"):
        jobs.submit(LOCAL, owner="alice", run_id="../elsewhere")
    assert [info.run_id for info in jobs.list_runs()] == [run_id]


def test_a_missing_run_is_not_found():
    for call in (jobs.get, jobs.run_dir, jobs.cancel, jobs.delete):
        with pytest.raises(NotFound, match="no run 20000101-000000-000000-0000"):
            call("20000101-000000-000000-0000")
    assert issubclass(jobs.RunNotFound, jobs.JobError) and issubclass(jobs.JobError, ReflectError)
