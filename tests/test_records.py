"""A training submission is one library call: the run and its history record, both or neither;
and a record's numbers come from the run's model.json."""

import pytest

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.base.errors import InvalidInput
from reflect_core.ml.spec import TrainSpec
from reflect_core.store import history, records

ALICE = User("alice")
TINY = {"dataset": {"n": 50}, "model": {"layers": 1, "channels": 4, "hidden": 8}, "training": {"epochs": 1}}


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # stays queued: no worker needed


def test_submission_adds_the_run_and_its_record():
    spec = TrainSpec.parse(TINY)
    run_id, record = records.submit_training(ALICE, spec, "first")
    assert jobs.get(run_id, user=ALICE).state == "queued"
    assert history.get(ALICE, record["id"])["run_id"] == run_id
    assert record["params"] == spec.to_dict() and record["files"] == f"runs/{run_id}"


def test_a_refused_run_leaves_no_record():
    spec = TrainSpec.parse({**TINY, "backend": "modal"})  # valid spec, but no modal backend here
    with pytest.raises(jobs.JobError, match="modal backend is not configured"):
        records.submit_training(ALICE, spec, "on modal")
    assert history.list_records(ALICE) == [] and jobs.list_runs() == []


def test_a_record_that_cannot_be_written_leaves_no_run():
    with pytest.raises(InvalidInput, match="name is 81 characters long"):
        records.submit_training(ALICE, TrainSpec.parse(TINY), "x" * 81)
    assert history.list_records(ALICE) == [] and jobs.list_runs() == []


def test_a_deleted_run_keeps_its_record_until_the_record_is_deleted():
    run_id, record = records.submit_training(ALICE, TrainSpec.parse(TINY), "gone")
    jobs.cancel(run_id, user=ALICE)
    jobs.delete(run_id, user=ALICE)
    assert records.refreshed(ALICE, history.get(ALICE, record["id"]))["id"] == record["id"]
    records.delete_record(ALICE, record["id"])  # the missing run is NotFound, not an error
    assert history.list_records(ALICE) == []


def test_estimates_are_checked_against_what_finished_runs_took(monkeypatch):
    import time

    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "1")
    spec = TrainSpec.parse({**TINY, "training": {"epochs": 2}})
    estimated = [records.submit_training(ALICE, spec, f"run {i}", estimate_s=estimate)[0]
                 for i, estimate in enumerate((1.0, 4.0))]
    unestimated, _ = records.submit_training(ALICE, spec, "no estimate")
    deadline = time.time() + 120
    while time.time() < deadline and any(jobs.get(r).state != "completed" for r in [*estimated, unestimated]):
        jobs.tick()
        time.sleep(0.2)
    ratios = records.estimate_ratios(ALICE)
    assert len(ratios) == 2 and all(r > 0 for r in ratios)  # the run without an estimate is not counted
    # Newest first; each is (measured seconds per epoch) / (estimated seconds per epoch), from the
    # run's own model.json (tiny runs' timings are noise, so the check is the arithmetic, not the speed).
    from reflect_core.ml.meta import ModelMeta

    for ratio, (run_id, estimate) in zip(ratios, [(estimated[1], 4.0), (estimated[0], 1.0)]):
        times = ModelMeta.read(jobs.get(run_id).run_dir / "model").history["time"]
        assert ratio == pytest.approx((times[-1] / len(times)) / (estimate / 2))
