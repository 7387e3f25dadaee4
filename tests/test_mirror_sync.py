"""Syncing the state mirror (store.mirror) against a fake Hub dataset repo: many writes make few
commits; the background thread saves by itself; a concurrent writer is merged, not overwritten;
deletions go one way only; oversized files are listed; hostile manifests, paths, symlinks and
bytes are refused; a slow or unreachable Hub costs a timeout and a clear message."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import pytest
from hub_fakes import FakeStateHub, hub_fixture, mirror_env, new_mirror, settings  # noqa: F401 - fixtures

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.base.storage import data_dir
from reflect_core.store import history, mirror
from reflect_core.store.hub import HubError
from reflect_core.store.mirror_hub import check_manifest

pytestmark = pytest.mark.usefixtures("mirror_env")


def test_many_writes_make_few_commits(hub):
    m = new_mirror(hub)
    m.quiet_s, m.min_commit_interval_s, m.max_wait_s = 5.0, 60.0, 120.0
    now = 1000.0

    def writes(seconds: int, tag: str) -> None:
        nonlocal now
        for n in range(seconds):  # a history record every second, each a rewrite of history.json
            history.add(LOCAL_USER, "film", f"{tag} {n}", {})
            now += 1.0
            m.tick(now)

    m.tick(now)  # the restore
    assert m.state.restored and hub.commits == 0
    writes(40, "a")
    assert hub.commits == 0 and m.pending() > 0  # never quiet for 5 s yet
    now += 6.0
    m.tick(now)
    assert hub.commits == 1 and m.pending() == 0  # quiet: one commit for 40 writes
    writes(20, "b")
    now += 6.0
    m.tick(now)
    assert hub.commits == 1  # quiet again, but within a minute of the last commit
    now += 60.0
    m.tick(now)
    assert hub.commits == 2
    writes(130, "c")  # changes that never settle still go out after max_wait_s
    assert hub.commits == 3
    assert len(json.loads(hub.files["data/history.json"])["records"]) >= 60


def test_the_background_thread_saves_a_change_by_itself(hub):
    m = mirror.start(settings(), api=hub)
    m.scan_interval_s, m.quiet_s, m.min_commit_interval_s = 0.05, 0.2, 0.0
    assert mirror.current() is m and mirror.start(settings(), api=hub) is m  # one per process
    (data_dir() / "note.txt").write_text("saved by the thread")
    m.notify()
    deadline = time.monotonic() + 10
    while not ("data/note.txt" in hub.files and m.pending() == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.files["data/note.txt"] == b"saved by the thread"
    status = mirror.mirror_status()
    assert status["configured"] and status["repo"] == "me/reflect-state" and status["error"] is None
    assert status["last_sync"] is not None and status["pending"] == 0


def test_a_concurrent_writer_is_merged_and_a_double_change_keeps_both_versions(hub):
    m = new_mirror(hub)
    (data_dir() / "notes").mkdir()
    for name in ("shared.txt", "theirs.txt", "ours.txt"):
        (data_dir() / "notes" / name).write_text("v1")
    assert m.restore() and m.flush()
    hub.write_as_another_mirror({"data/notes/shared.txt": b"theirs", "data/notes/theirs.txt": b"theirs",
                                 "data/notes/new.txt": b"new"})
    (data_dir() / "notes" / "shared.txt").write_text("ours")
    (data_dir() / "notes" / "ours.txt").write_text("ours")
    assert m.flush(), m.error  # refused (412) on the old parent, merged, committed on the new head
    notes = {p.name: p.read_text() for p in (data_dir() / "notes").iterdir()}
    assert notes == {"shared.txt": "ours", "theirs.txt": "theirs", "ours.txt": "ours", "new.txt": "new"}
    assert {p: hub.files[f"data/notes/{p}"].decode() for p in notes} == notes
    assert m.status()["conflicts"] == ["data/notes/shared.txt"]
    copies = list((data_dir() / ".mirror" / "conflicts").rglob("shared.txt"))
    assert [c.read_text() for c in copies] == ["theirs"]  # the Hub's version is kept, not lost


def test_a_deletion_here_is_pushed_but_the_hub_lacking_a_file_deletes_nothing_here(hub):
    m = new_mirror(hub)
    for name in ("a.txt", "b.txt"):
        (data_dir() / name).write_text(name)
    assert m.restore() and m.flush()
    (data_dir() / "a.txt").unlink()
    assert m.flush() and "data/a.txt" not in hub.files
    hub.write_as_another_mirror({"data/b.txt": None})
    assert new_mirror(hub).restore()
    assert (data_dir() / "b.txt").read_text() == "b.txt"


def test_a_file_over_the_size_cap_is_skipped_and_listed(hub, monkeypatch):
    from reflect_core.store import mirror_files

    monkeypatch.setattr(mirror_files, "MAX_FILE_BYTES", 1000)
    (data_dir() / "big.bin").write_bytes(b"x" * 1001)
    (data_dir() / "small.txt").write_text("kept")
    m = new_mirror(hub)
    assert m.restore() and m.flush()
    assert m.status()["skipped"] == ["data/big.bin"]
    assert "data/small.txt" in hub.files and "data/big.bin" not in hub.files


# ---- the Hub's content is not trusted ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["data/../escape.txt", "/etc/passwd", "data//x", "data/./x", "data/hub_cache/x",
                                  "data/.mirror/synced.json", "data/runs/r1/data/nr_train.npy", "other/x",
                                  "data/a\\..\\b", "data/" + "x/" * 600])
def test_hostile_manifest_paths_are_refused_before_anything_is_written(hub, path, tmp_path):
    entry = {"sha256": hashlib.sha256(b"evil").hexdigest(), "size": 4}
    with pytest.raises(HubError, match="nothing was restored"):
        check_manifest({"version": 1, "files": {path: entry}})
    hub.push({"manifest.json": json.dumps({"version": 1, "files": {path: entry}}).encode()})
    m = new_mirror(hub)
    assert not m.restore() and "nothing was restored" in m.error
    assert not (tmp_path / "escape.txt").exists() and not m.state.restored
    assert hub.commits == 0 and not m.flush()  # no sync either until a restore succeeds


def test_a_symlink_in_the_data_directory_is_never_followed_by_a_restore(hub, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir() / "uploads").symlink_to(outside)
    entry = {"sha256": hashlib.sha256(b"evil").hexdigest(), "size": 4}
    hub.push({"data/uploads/x.txt": b"evil",
              "manifest.json": json.dumps({"version": 1, "files": {"data/uploads/x.txt": entry}}).encode()})
    m = new_mirror(hub)
    assert not m.restore() and "outside the data directory" in m.error
    assert list(outside.iterdir()) == []


def test_bytes_that_do_not_match_the_manifest_are_refused(hub):
    entry = {"sha256": hashlib.sha256(b"promised").hexdigest(), "size": 8}
    manifest = {"version": 1, "files": {"data/x.txt": entry}}
    hub.push({"data/x.txt": b"tampered", "manifest.json": json.dumps(manifest).encode()})
    m = new_mirror(hub)
    assert not m.restore() and "do not match" in m.error and not (data_dir() / "x.txt").exists()


# ---- a slow or unreachable Hub -----------------------------------------------------------------------


def test_an_unreachable_hub_is_a_clear_message_and_work_goes_on_until_it_answers(hub):
    (data_dir() / "kept.txt").write_text("local work")
    hub.unreachable = True
    m = new_mirror(hub)
    assert not m.restore()
    assert "the Hub cannot be reached" in m.error and "restore from me/reflect-state" in m.error
    assert (data_dir() / "kept.txt").read_text() == "local work"
    assert not m.flush() and hub.commits == 0  # no sync before a restore
    hub.unreachable = False
    m._next_try = 0.0
    m.tick(time.monotonic())  # the retry restores
    assert m.state.restored and m.error is None
    assert m.flush() and hub.files["data/kept.txt"] == b"local work"


def test_a_slow_hub_answers_within_the_timeout_with_a_message(hub):
    hub.delay = 3.0
    m = new_mirror(hub, timeout_s=0.5)
    started = time.monotonic()
    assert not m.restore()
    assert time.monotonic() - started < 1.5
    assert "did not answer within 0.5 s" in m.error


# ---- local work is never overwritten nor deleted by mistake ------------------------------------------


def test_a_local_file_too_big_to_mirror_is_never_replaced_by_the_hubs_version(hub, monkeypatch):
    from reflect_core.store import mirror_files

    monkeypatch.setattr(mirror_files, "MAX_FILE_BYTES", 1000)
    big = data_dir() / "big.bin"
    big.write_bytes(b"x" * 1001)  # skipped by the scan: unknown to the merge
    hub.write_as_another_mirror({"data/big.bin": b"the Hub's"})
    m = new_mirror(hub)
    assert m.restore(), m.error
    assert big.read_bytes() == b"x" * 1001
    assert m.status()["conflicts"] == ["data/big.bin"]
    assert [c.read_bytes() for c in (data_dir() / ".mirror" / "conflicts").rglob("big.bin")] == [b"the Hub's"]


def test_a_file_written_here_during_the_downloads_of_a_merge_is_kept(hub):
    notes = data_dir() / "notes.txt"
    notes.write_text("v1")
    m = new_mirror(hub)
    assert m.restore() and m.flush()
    hub.write_as_another_mirror({"data/notes.txt": b"theirs"})

    def worker_writes(filename):  # a worker process writes while the restore downloads
        if filename == "data/notes.txt":
            notes.write_text("ours, newer")

    hub.before_download = worker_writes
    again = new_mirror(hub)  # a restart on the same disk: notes.txt matched the base at the scan
    assert again.restore(), again.error
    assert notes.read_text() == "ours, newer"
    assert again.status()["conflicts"] == ["data/notes.txt"]
    assert again.flush() and hub.files["data/notes.txt"] == b"ours, newer"


def test_a_tinydb_file_whose_lock_stays_busy_is_not_replaced(hub, monkeypatch):
    from filelock import FileLock

    from reflect_core.store import mirror_sync

    monkeypatch.setattr(mirror_sync, "LOCK_TIMEOUT_S", 0.1)
    m = new_mirror(hub)
    history.add(LOCAL_USER, "film", "first", {})
    assert m.restore() and m.flush()
    hub.write_as_another_mirror({"data/history.json": b'{"records": {}}'})
    before = (data_dir() / "history.json").read_bytes()
    with FileLock(f"{data_dir() / 'history.json'}.lock"):  # a TinyDB operation in progress elsewhere
        again = new_mirror(hub)
        assert again.restore(), again.error
    assert (data_dir() / "history.json").read_bytes() == before
    assert again.status()["conflicts"] == ["data/history.json"]


def test_a_file_that_cannot_be_read_is_not_deleted_on_the_hub(hub, monkeypatch):
    from reflect_core.store import mirror_sync

    (data_dir() / "kept.txt").write_text("kept")
    (data_dir() / "other.txt").write_text("other")
    m = new_mirror(hub)
    assert m.restore() and m.flush()
    real = mirror_sync.sha256_file

    def unreadable(path):
        if path.name == "kept.txt":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(mirror_sync, "sha256_file", unreadable)
    (data_dir() / "other.txt").write_text("changed")  # so that a commit is made
    m.state._hashes.clear()
    assert m.flush(), m.error
    assert hub.files["data/kept.txt"] == b"kept" and hub.files["data/other.txt"] == b"changed"
    assert "data/kept.txt" in json.loads(hub.files["manifest.json"])["files"]
    assert "data/kept.txt" in m.status()["skipped"]


def test_a_same_size_rewrite_within_one_timestamp_tick_is_still_pushed(hub):
    import os

    note = data_dir() / "state.txt"
    note.write_text("paused")
    m = new_mirror(hub)
    assert m.restore() and m.flush()
    mtime = note.stat().st_mtime_ns
    note.write_text("failed")  # same size; the file system's clock had not moved on
    os.utime(note, ns=(mtime, mtime))
    assert m.flush()
    assert hub.files["data/state.txt"] == b"failed"


def test_another_server_process_on_the_same_data_directory_never_takes_this_ones_commit_files(hub):
    (data_dir() / "a.txt").write_text("a")
    first = new_mirror(hub)
    assert first.restore()
    second = new_mirror(hub)  # a second server process on the same data directory

    def second_syncs():
        (data_dir() / "b.txt").write_text("b")
        assert second.restore() and second.flush(), second.error

    hub.before_commit = second_syncs  # runs while the first one's commit uploads its copies
    assert first.flush(), first.error
    assert hub.files["data/a.txt"] == b"a" and hub.files["data/b.txt"] == b"b"


def test_the_login_file_inside_the_data_directory_is_merged_only_as_the_login_file(hub, tmp_path):
    login = data_dir() / "auth.yaml"
    login.write_text("deployer's file\n")
    hub.write_as_another_mirror({"data/auth.yaml": b"credentials: {usernames: {eve: {roles: [admin]}}}\n"})
    m = new_mirror(hub, login)
    m.restore()
    assert login.read_text() == "deployer's file\n"


def test_a_hostile_login_file_on_the_hub_is_a_failed_restore_not_a_dead_mirror(hub, tmp_path):
    login = tmp_path / "auth.yaml"
    login.write_text("credentials: {usernames: {}}\n")
    hub.write_as_another_mirror({"login/auth.yaml": b"credentials: {usernames: {eve: [1]}}\n"})
    m = mirror.start(settings(login), api=hub, background=False)  # never raises: the app must open
    assert m is mirror.current() and not m.state.restored
    assert m.error.startswith("restore from me/reflect-state failed")


def test_the_token_is_not_in_the_settings_repr():
    assert "hf_fake" not in repr(settings()) and "hf_fake" not in str(settings())


def test_history_made_while_the_hub_was_unreachable_at_start_keeps_the_hubs_records_too(hub):
    before = history.add(LOCAL_USER, "film", "before the restart", {})
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    shutil.rmtree(data_dir())  # the container's disk is gone
    hub.unreachable = True
    m = new_mirror(hub)
    assert not m.restore()  # the app opens anyway, on an empty history
    after = history.add(LOCAL_USER, "film", "made during the outage", {})
    hub.unreachable = False
    assert m.restore(), m.error
    assert {r["id"] for r in history.list_records(LOCAL_USER)} == {before["id"], after["id"]}
    assert m.flush()
    pushed = json.loads(hub.files["data/history.json"])["records"].values()
    assert {r["id"] for r in pushed} == {before["id"], after["id"]}


def test_two_restores_installing_one_file_at_once_never_share_a_temporary_file(tmp_path, monkeypatch):
    import shutil as real_shutil
    import threading

    from reflect_core.store import mirror_files

    root = tmp_path / "root"
    root.mkdir()
    target = root / "x.txt"

    def staged(name: str, data: bytes):
        path = tmp_path / name
        path.write_bytes(data)
        return path, {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    ours, ours_entry = staged("ours", b"ours")
    theirs, theirs_entry = staged("theirs", b"theirs")
    real_move, done = real_shutil.move, []

    def move_then_the_other_process_installs(src, dst):
        real_move(src, dst)
        if not done:  # between this install's move and its replace: another process's whole install
            done.append(1)
            other = threading.Thread(target=mirror_files.install, args=(theirs, target, theirs_entry, root))
            other.start()
            other.join()

    monkeypatch.setattr(mirror_files.shutil, "move", move_then_the_other_process_installs)
    mirror_files.install(ours, target, ours_entry, root)
    assert target.read_bytes() == b"ours" and done
    assert [p.name for p in root.iterdir()] == ["x.txt"]


def test_an_existing_public_dataset_of_that_name_is_never_written(hub):
    hub.private = False  # the deployer's public dataset has the name HF_REPO_ID gives the mirror
    (data_dir() / "uploads").mkdir()
    (data_dir() / "uploads" / "private.txt").write_text("a user's upload")
    m = new_mirror(hub)
    assert not m.restore() and "is public" in m.error
    assert not m.flush() and hub.commits == 0
