"""reflect_core.store.history and reflect_core.accounts.access: a real TinyDB file in tmp_path,
real processes for the concurrency and crash tests."""

import json
import multiprocessing
import os
import random
import threading
import time

import pytest

from reflect_core.accounts.access import LOCAL_USER, AccessError, User, check_owner, validate_username
from reflect_core.store import history
from reflect_core.store.history import HistoryError, RecordNotFound

ALICE = User("alice")
BOB = User("bob")
ADMIN = User("root", "admin")


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    """A fresh data directory per test."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def clock(monkeypatch):
    """Set ``clock.now`` to choose the next created/updated stamp."""

    class Clock:
        now = 1000.0

    monkeypatch.setattr(history, "_now", lambda: Clock.now)
    return Clock


def read_file(data):
    return json.loads((data / "history.json").read_text())


# --- access -----------------------------------------------------------------

def test_users_and_roles():
    assert LOCAL_USER.is_admin and LOCAL_USER.name == "local"
    assert not ALICE.is_admin and ADMIN.is_admin
    with pytest.raises(ValueError, match="role 'Admin'"):
        User("x", "Admin")


def test_check_owner_message_names_thing_and_user_only():
    check_owner(ALICE, "alice", "record 1")
    check_owner(ADMIN, "alice", "record 1")
    with pytest.raises(AccessError) as err:
        check_owner(BOB, "alice", "run 2026-01-01")
    assert "run 2026-01-01" in str(err.value) and "bob" in str(err.value)
    assert "alice" not in str(err.value)
    assert isinstance(err.value, PermissionError)


@pytest.mark.parametrize("name", ["a", "Alice_1.x-y", "x" * 40])
def test_valid_usernames(name):
    assert validate_username(name) == name


@pytest.mark.parametrize("name, message", [
    ("", "1-40"), ("x" * 41, "1-40"), (".hidden", "start with '.'"), ("..", "start with '.'"),
    ("a/b", "only letters"), ("a b", "only letters"), ("josé", "only letters"), (7, "text"),
])
def test_invalid_usernames(name, message):
    with pytest.raises(ValueError, match=message):
        validate_username(name)


# --- CRUD -------------------------------------------------------------------

def test_add_get_round_trip(data):
    before = time.time()
    rec = history.add(ALICE, "training", "first", {"epochs": 3, "q": (1, 2)}, {"loss": 0.5},
                      files="runs/r1", run_id="r1")
    assert len(rec["id"]) == 12 and int(rec["id"], 16) >= 0
    assert rec["owner"] == "alice" and rec["kind"] == "training" and rec["name"] == "first"
    assert before <= rec["created"] == rec["updated"] <= time.time()
    assert rec["params"] == {"epochs": 3, "q": [1, 2]}  # stored as JSON gives it back
    assert rec["summary"] == {"loss": 0.5} and rec["files"] == "runs/r1" and rec["run_id"] == "r1"
    assert history.get(ALICE, rec["id"]) == rec
    assert list(read_file(data)["records"].values()) == [rec]


def test_defaults_and_find_by_run():
    rec = history.add(ALICE, "film", "f", {})
    assert rec["summary"] == {} and rec["files"] is None and rec["run_id"] is None
    run = history.add(ALICE, "training", "t", {}, run_id="abc")
    assert history.find_by_run(ALICE, "abc") == run
    assert history.find_by_run(ALICE, "nothing") is None


def test_rename_update_delete(clock):
    rec = history.add(ALICE, "analysis", "a", {"x": 1, "y": 2}, {"m": 1})
    clock.now = 1001.0
    assert history.rename(ALICE, rec["id"], "  b  ")["name"] == "b"
    clock.now = 1002.0
    out = history.update(ALICE, rec["id"], summary={"n": 2}, params={"y": 3})
    assert out["summary"] == {"m": 1, "n": 2} and out["params"] == {"x": 1, "y": 3}
    assert out["created"] == 1000.0 and out["updated"] == 1002.0
    assert history.get(ALICE, rec["id"]) == out
    assert history.delete(ALICE, rec["id"]) == out
    assert history.list_records(ALICE) == []
    with pytest.raises(RecordNotFound):
        history.get(ALICE, rec["id"])


def test_missing_record_is_a_named_key_error():
    for call in (lambda: history.get(ALICE, "0123456789ab"),
                 lambda: history.rename(ALICE, "0123456789ab", "x"),
                 lambda: history.update(ALICE, "0123456789ab", summary={}),
                 lambda: history.delete(ALICE, "0123456789ab")):
        with pytest.raises(KeyError) as err:
            call()
        assert isinstance(err.value, HistoryError)
        assert str(err.value) == "no record '0123456789ab' in history"


def test_name_trimmed_and_limits():
    assert history.add(ALICE, "film", "\t x y \n", {})["name"] == "x y"
    assert history.add(ALICE, "film", "z", {})["name"] == "z"
    rec = history.add(ALICE, "film", "n" * 80, {})
    assert rec["name"] == "n" * 80
    assert history.add(ALICE, "film", " " + "n" * 80 + " ", {})["name"] == "n" * 80
    with pytest.raises(ValueError, match="81 characters long; the limit is 80"):
        history.add(ALICE, "film", "n" * 81, {})
    with pytest.raises(ValueError, match="name is empty"):
        history.add(ALICE, "film", "   ", {})
    with pytest.raises(ValueError, match="name is empty"):
        history.rename(ALICE, rec["id"], "")
    with pytest.raises(ValueError, match="the limit is 80"):
        history.rename(ALICE, rec["id"], "m" * 81)
    assert history.get(ALICE, rec["id"])["name"] == "n" * 80


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "movie"}, "kind 'movie' is not one of"),
    ({"params": [1]}, "params must be a dict"),
    ({"summary": {"f": object()}}, "summary cannot be stored as JSON"),
    ({"run_id": ""}, "run_id must be a non-empty string"),
    ({"files": "../elsewhere"}, "not inside the data directory"),
    ({"files": "runs/../.."}, "not inside the data directory"),
    ({"files": "."}, "not inside the data directory"),
    ({"files": "/tmp/x"}, "must be relative"),
])
def test_add_rejects_bad_fields(kwargs, message):
    args = {"kind": "film", "name": "n", "params": {}} | kwargs
    with pytest.raises(ValueError, match=message):
        history.add(ALICE, **args)
    assert history.list_records(ALICE) == []


# --- listing ----------------------------------------------------------------

def test_list_newest_first_and_filters(clock):
    ids = {}
    for t, kind, name in [(100, "training", "Silicon run"), (200, "film", "silicon FILM"),
                          (300, "training", "gold"), (400, "import", "measured SI")]:
        clock.now = float(t)
        ids[t] = history.add(ALICE, kind, name, {})["id"]

    def listed(**kw):
        return [ids_by_id[r["id"]] for r in history.list_records(ALICE, **kw)]

    ids_by_id = {v: k for k, v in ids.items()}
    assert listed() == [400, 300, 200, 100]
    assert listed(kind="training") == [300, 100]
    assert listed(search="SILICON") == [200, 100]
    assert listed(search="si") == [400, 200, 100]
    assert listed(since=200) == [400, 300, 200]
    assert listed(until=300) == [300, 200, 100]
    assert listed(since=150, until=350) == [300, 200]
    assert listed(kind="training", search="sil", since=50) == [100]
    assert listed(search="nothing") == []
    with pytest.raises(ValueError, match="kind 'x'"):
        history.list_records(ALICE, kind="x")


def test_same_timestamp_lists_in_reverse_insertion_order(clock):
    names = [history.add(ALICE, "film", f"f{i}", {})["name"] for i in range(5)]
    assert [r["name"] for r in history.list_records(ALICE)] == names[::-1]


# --- ownership --------------------------------------------------------------

def test_other_user_can_do_nothing_with_a_record():
    rec = history.add(ALICE, "training", "secret-name", {"p": 1}, run_id="run-a")
    assert history.list_records(BOB) == []
    for call in (lambda: history.get(BOB, rec["id"]),
                 lambda: history.rename(BOB, rec["id"], "mine"),
                 lambda: history.update(BOB, rec["id"], summary={"x": 1}),
                 lambda: history.delete(BOB, rec["id"]),
                 lambda: history.find_by_run(BOB, "run-a")):
        with pytest.raises(AccessError) as err:
            call()
        assert "secret-name" not in str(err.value) and "alice" not in str(err.value)
        assert "bob" in str(err.value)
    assert history.get(ALICE, rec["id"]) == rec


def test_admin_sees_and_acts_on_everything():
    a = history.add(ALICE, "film", "a", {})
    b = history.add(BOB, "film", "b", {})
    assert {r["id"] for r in history.list_records(ADMIN)} == {a["id"], b["id"]}
    assert [r["id"] for r in history.list_records(ALICE)] == [a["id"]]
    assert history.get(LOCAL_USER, a["id"]) == a
    assert history.rename(ADMIN, a["id"], "renamed")["owner"] == "alice"
    assert history.update(ADMIN, b["id"], summary={"k": 1})["summary"] == {"k": 1}
    history.delete(ADMIN, b["id"])
    assert [r["name"] for r in history.list_records(ADMIN)] == ["renamed"]


# --- files ------------------------------------------------------------------

def test_delete_removes_the_files_directory(data):
    (data / "history" / "x" / "sub").mkdir(parents=True)
    (data / "history" / "x" / "sub" / "f.npy").write_bytes(b"1")
    rec = history.add(ALICE, "film", "f", {}, files="history/x")
    gone = history.add(ALICE, "film", "g", {}, files="history/never-written")
    history.delete(ALICE, rec["id"])
    history.delete(ALICE, gone["id"])
    assert not (data / "history" / "x").exists() and (data / "history").is_dir()


def test_delete_keeps_files_another_record_points_into(data):
    (data / "runs" / "r1" / "film").mkdir(parents=True)
    run = history.add(ALICE, "training", "t", {}, files="runs/r1", run_id="r1")
    film = history.add(ALICE, "film", "f", {}, files="runs/r1/film")
    history.delete(ALICE, run["id"])
    assert (data / "runs" / "r1" / "film").is_dir()
    history.delete(ALICE, film["id"])
    assert not (data / "runs" / "r1" / "film").exists()


def test_delete_refuses_a_symlink_out_of_the_data_dir(data, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "keep.txt").write_text("keep")
    rec = history.add(ALICE, "import", "i", {}, files="uploads/alice/link")
    (data / "uploads" / "alice").mkdir(parents=True)
    (data / "uploads" / "alice" / "link").symlink_to(outside)
    with pytest.raises(HistoryError, match=f"record {rec['id']} was not deleted: .*not inside the data directory"):
        history.delete(ALICE, rec["id"])
    assert (outside / "keep.txt").read_text() == "keep"
    assert history.get(ALICE, rec["id"]) == rec


def test_delete_refuses_a_hand_edited_escaping_path(data, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "keep.txt").write_text("keep")
    rec = history.add(ALICE, "import", "i", {}, files="uploads/alice/x")
    content = read_file(data)
    content["records"]["1"]["files"] = os.path.relpath(outside, data)
    (data / "history.json").write_text(json.dumps(content))
    with pytest.raises(HistoryError, match="not inside the data directory"):
        history.delete(ALICE, rec["id"])
    assert (outside / "keep.txt").exists() and len(history.list_records(ALICE)) == 1


# --- damaged file -----------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ('{"records": {"1": {"id": ', "unreadable: .*not valid JSON"),
    ("[1, 2]", "not a TinyDB file of records"),
    ('{"records": {"1": {"id": "a"}}}', "entry 1 lacks owner"),
])
def test_damaged_history_is_reported_not_reset(data, content, message):
    path = data / "history.json"
    path.write_text(content)
    for call in (lambda: history.list_records(ADMIN), lambda: history.add(ALICE, "film", "f", {})):
        with pytest.raises(HistoryError, match=message) as err:
            call()
        assert str(path) in str(err.value)
    assert path.read_text() == content


# --- concurrency and crashes (real processes) -----------------------------------

N_PER_THREAD = 50


def _thread_work(proc, thread, shared_id, barrier, errors):
    try:
        user = User(f"w{proc}")
        barrier.wait(timeout=60)
        for i in range(N_PER_THREAD):
            rec = history.add(user, "training", f"w{proc}-t{thread}-{i}", {"i": i})
            history.update(user, rec["id"], summary={"step": i, "thread": thread})
            # Read-modify-write of one record by everyone: a lost update would drop a key.
            history.update(LOCAL_USER, shared_id, summary={f"{proc}-{thread}-{i}": i})
    except BaseException as exc:
        errors.append(exc)


def _concurrent_writer(data_dir, proc, shared_id, barrier):
    os.environ["REFLECT_DATA_DIR"] = data_dir
    errors = []
    threads = [threading.Thread(target=_thread_work, args=(proc, t, shared_id, barrier, errors)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_two_processes_two_threads_lose_nothing(data):
    shared = history.add(LOCAL_USER, "analysis", "shared", {})
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_concurrent_writer, args=(str(data), p, shared["id"], barrier)) for p in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    records = history.list_records(ADMIN, kind="training")
    assert len(records) == 2 * 2 * N_PER_THREAD
    assert len({r["id"] for r in records}) == len(records)
    by_name = {r["name"]: r for r in records}
    for p in range(2):
        for t in range(2):
            for i in range(N_PER_THREAD):
                rec = by_name[f"w{p}-t{t}-{i}"]
                assert (rec["owner"], rec["params"], rec["summary"]) == (f"w{p}", {"i": i}, {"step": i, "thread": t})
    expected = {f"{p}-{t}-{i}": i for p in range(2) for t in range(2) for i in range(N_PER_THREAD)}
    assert history.get(ADMIN, shared["id"])["summary"] == expected
    assert len(read_file(data)["records"]) == 2 * 2 * N_PER_THREAD + 1


BLOB = "x" * 4000  # larger records make each write take longer, so a kill lands mid-write more often


def _endless_writer(data_dir, start):
    os.environ["REFLECT_DATA_DIR"] = data_dir
    for i in range(start, start + 100_000):
        history.add(ALICE, "import", f"rec-{i}", {"i": i, "blob": BLOB})


def _wait_for_count(n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(history.list_records(ALICE))
        if count >= n:
            return count
        time.sleep(0.01)
    raise AssertionError(f"writer did not reach {n} records in {timeout} s")


def test_writer_killed_mid_stream_leaves_every_completed_record(data):
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(0)
    completed = 0
    for _ in range(3):  # a few kills at different moments; each new writer continues the numbering
        writer = ctx.Process(target=_endless_writer, args=(str(data), completed))
        writer.start()
        seen = _wait_for_count(completed + 15)
        time.sleep(rng.uniform(0, 0.05))
        writer.kill()  # SIGKILL: no cleanup, possibly while holding the lock or mid-write
        writer.join(timeout=10)
        assert writer.exitcode == -9

        json.loads((data / "history.json").read_text())
        records = history.list_records(ALICE)
        completed = len(records)
        assert completed >= seen
        assert sorted(r["params"]["i"] for r in records) == list(range(completed))
        assert all(r["name"] == f"rec-{r['params']['i']}" and r["params"]["blob"] == BLOB for r in records)
    # The lock the killed writer held is free again.
    assert history.add(BOB, "film", "after", {})["name"] == "after"
