"""The state mirror (store.mirror) across a restart, against a fake Hub dataset repo: a data
directory made through the real code paths comes back byte for byte after a wipe; a run that was
running comes back failed and resumes from its checkpoint (its training arrays regenerated to the
same bytes); the login file's signed-up users come back without touching the deployer's entries.
Syncing itself (debounce, concurrent writers, hostile or unreachable Hubs): test_mirror_sync."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal

import pytest
import yaml
from hub_fakes import FakeStateHub, hub_fixture, mirror_env, new_mirror  # noqa: F401 - fixtures
from test_jobs import train_spec, wait_for

from reflect_core import jobs
from reflect_core.accounts.access import LOCAL_USER, User
from reflect_core.accounts.auth_config import add_registered_user, hash_password, load_auth_config
from reflect_core.base.storage import data_dir
from reflect_core.jobs import runfiles
from reflect_core.store import history, mirror, user_curves
from reflect_core.store.mirror import MirrorSettingsError, mirror_settings
from reflect_core.store.mirror_files import excluded

CURVE = b"# Q R dR\n0.01 0.9 0.01\n0.02 0.5 0.01\n0.03 0.1 0.005\n0.05 0.01 0.001\n"


pytestmark = pytest.mark.usefixtures("mirror_env")


@pytest.fixture
def login(tmp_path):
    """A deployer's login file (one admin), then a user who signed up through the real path."""
    path = tmp_path / "auth.yaml"
    config = {"credentials": {"usernames": {"root": {"name": "Root", "email": "root@lab.org",
                                                     "password": hash_password("root-password-1"),
                                                     "roles": ["admin"]}}},
              "cookie": {"name": "reflect_test", "key": secrets.token_urlsafe(48), "expiry_days": 1}}
    path.write_text(yaml.safe_dump(config))
    deployer = path.read_bytes()
    add_registered_user(path, "carol", {"name": "Carol", "email": "carol@lab.org",
                                        "password": hash_password("carol-password-1")})
    return path, deployer


def tree(root) -> dict[str, str]:
    """relative path → sha256 of every mirrored file under ``root``."""
    found = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.is_file() and not excluded(parts):
            found["/".join(parts)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def wipe(login_path=None):
    shutil.rmtree(data_dir())
    if login_path is not None:
        login_path.unlink()


def populate(alice: User) -> dict:
    """History records, an uploaded curve, a trained model with its record, a paused run with a
    checkpoint, a queued run: each through the code that makes them in the app."""
    from test_history_app import trained_record

    film = history.add(alice, "film", "gold on silicon", {"film": {"layers": []}})
    curve = user_curves.save_curve(alice, "measured.txt", CURVE)
    model = trained_record("tiny", 1)
    paused = jobs.submit(train_spec(5), owner="alice", name="paused run")
    with runfiles.locked():
        path = runfiles.run_dir(paused)
        state = runfiles.read_state(path)
        runfiles.write_state(path, state, state="paused", attempts=1)
    (path / jobs.CHECKPOINT).write_bytes(os.urandom(3000))
    queued = jobs.submit(train_spec(5), owner="alice", name="queued run")
    return {"film": film, "curve": curve, "model": model, "paused": paused, "queued": queued}


# ---- settings ----------------------------------------------------------------------------------------


def test_settings_name_a_dataset_repo_only_when_configured():
    assert mirror_settings({}, "shared") is None
    assert mirror_settings({"HF_TOKEN": "t", "HF_REPO_ID": "me/runs"}, "local") is None  # local: only when asked
    shared = mirror_settings({"HF_TOKEN": "t", "HF_REPO_ID": "me/runs", "AUTH_CONFIG": "/x/auth.yaml"}, "shared")
    assert (shared.repo_id, shared.login_path, shared.setting) == ("me/runs", "/x/auth.yaml", "HF_REPO_ID")
    explicit = mirror_settings({"HF_TOKEN": "t", "HF_REPO_ID": "me/runs", "HF_STATE_REPO_ID": "me/state"}, "local")
    assert explicit.repo_id == "me/state"
    with pytest.raises(MirrorSettingsError, match="HF_STATE_REPO_ID 'not a repo' is not a Hub repo id"):
        mirror_settings({"HF_TOKEN": "t", "HF_STATE_REPO_ID": "not a repo"}, "local")
    with pytest.raises(MirrorSettingsError, match="HF_TOKEN is not"):
        mirror_settings({"HF_STATE_REPO_ID": "me/state"}, "local")
    assert mirror.mirror_status() == {"configured": False, "repo": None, "last_sync": None, "pending": 0,
                                      "error": None}


# ---- restart: everything back ------------------------------------------------------------------------


def test_a_wiped_data_directory_and_login_file_come_back_byte_for_byte(hub, login):
    login_path, _ = login
    alice = User("alice", "user")
    made = populate(alice)
    first = new_mirror(hub, login_path)
    assert first.restore() and first.flush()
    assert hub.private is True and hub.repo_type == "dataset" and hub.commits == 1
    before, login_bytes = tree(data_dir()), login_path.read_bytes()
    assert "history.json" in before and any(p.startswith("uploads/alice/") for p in before)
    assert "runs/tiny/model/model.pt" in before and f"runs/{made['paused']}/{jobs.CHECKPOINT}" in before
    assert (data_dir() / "runs/tiny/data/nr_train.npy").is_file()
    assert not any(p.startswith("data/runs/tiny/data/") for p in hub.files)  # generated arrays stay out
    manifest = json.loads(hub.files["manifest.json"])["files"]
    assert set(manifest) == {f"data/{p}" for p in before} | {"login/auth.yaml"}

    wipe(login_path)
    second = new_mirror(hub, login_path)
    assert second.restore(), second.error
    assert tree(data_dir()) == before and login_path.read_bytes() == login_bytes
    assert second.flush() and hub.commits == 1  # nothing changed: no commit
    # The app reads it all again.
    assert {r["name"] for r in history.list_records(alice)} >= {"gold on silicon"}
    assert user_curves.curves(alice) == [made["curve"]]
    assert jobs.get(made["paused"]).actions == ("resume", "delete")
    assert jobs.get(made["queued"]).state == "queued"
    assert "carol" in load_auth_config(login_path)["credentials"]["usernames"]


def test_signed_up_users_are_added_back_to_the_deployers_login_file(hub, login):
    login_path, deployer = login
    first = new_mirror(hub, login_path)
    assert first.restore() and first.flush()
    wipe()
    login_path.write_bytes(deployer)  # a redeploy brings the committed file back, without carol
    assert new_mirror(hub, login_path).restore()
    users = load_auth_config(login_path)["credentials"]["usernames"]
    assert set(users) == {"root", "carol"} and "roles" not in users["carol"]
    assert users["root"] == yaml.safe_load(deployer)["credentials"]["usernames"]["root"]
    assert load_auth_config(login_path)["cookie"] == yaml.safe_load(deployer)["cookie"]  # never the Hub's


def test_users_from_the_hub_never_become_admins_of_the_deployers_file(hub, login):
    login_path, deployer = login
    tampered = yaml.safe_load(login_path.read_text())
    tampered["credentials"]["usernames"]["carol"]["roles"] = ["admin"]
    first = new_mirror(hub, login_path)
    assert first.restore() and first.flush()
    hub.write_as_another_mirror({"login/auth.yaml": yaml.safe_dump(tampered).encode()})
    login_path.write_bytes(deployer)
    assert new_mirror(hub, login_path).restore()
    assert load_auth_config(login_path)["credentials"]["usernames"]["carol"].get("roles") is None


def test_the_default_relative_data_directory_is_restored_too(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFLECT_DATA_DIR", "data")
    record = history.add(LOCAL_USER, "film", "relative", {})
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    wipe()
    assert new_mirror(hub).restore()
    assert history.get(LOCAL_USER, record["id"])["name"] == "relative"


def test_a_run_running_at_the_restart_comes_back_failed_and_resumes_from_its_checkpoint(hub, monkeypatch):
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "1")
    run_id = jobs.submit(train_spec(100_000, checkpoint_every=1), owner="alice")  # runs until stopped
    info = wait_for(run_id, lambda i: i.progress.epoch >= 2 and (i.run_dir / jobs.CHECKPOINT).is_file(),
                    timeout=120, what="a checkpoint")  # a worker's start (torch) is slow on a busy machine
    os.kill(info.pid, signal.SIGKILL)  # the container goes away with its worker
    arrays = {p.name: p.read_bytes() for p in (info.run_dir / "data").glob("*.npy")}
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    wipe()

    second = new_mirror(hub)
    assert second.restore()
    info = jobs.get(run_id)
    assert info.state == "failed" and "the server restarted while this run was running" in info.error
    assert "resume continues from its last checkpoint" in info.error
    assert second.status()["failed_runs"] == [run_id]
    assert not (info.run_dir / "data").exists()
    jobs.resume(run_id)
    info = wait_for(run_id, lambda i: "resumed from checkpoint" in "".join(i.progress.log_tail), timeout=120,
                    what="the resumed attempt")
    jobs.stop(run_id)
    info = wait_for(run_id, lambda i: i.state in ("stopped", "completed", "failed"), what="the stop")
    assert info.state == "stopped" and info.attempts == 2, info.error
    regenerated = {p.name: p.read_bytes() for p in (info.run_dir / "data").glob("*.npy")}
    assert regenerated == arrays and {"nr_train.npy", "sld_train.npy"} <= set(arrays)  # same seed, same bytes
    assert second.flush() and hub.commits == 2  # the failure, the resume and the stop go to the Hub


def test_a_modal_run_and_a_local_run_whose_files_stayed_are_left_to_the_scheduler(hub):
    ids = [jobs.submit(train_spec(5), owner="alice") for _ in range(2)]
    with runfiles.locked():
        for run_id, backend in zip(ids, ("modal", "local")):
            path = runfiles.run_dir(run_id)
            runfiles.write_state(path, runfiles.read_state(path), state="running", backend=backend, ref="x",
                                 started=1.0, attempts=1)
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    for lost in (runfiles.run_dir(ids[0]), data_dir() / ".mirror"):  # the modal run's files are lost, the other's stay
        shutil.rmtree(lost)
    assert new_mirror(hub).restore()
    assert [runfiles.read_state(runfiles.runs_dir() / i)["state"] for i in ids] == ["running", "running"]


def test_a_fit_running_at_the_restart_fails_with_what_to_do(hub):
    fit = data_dir() / "fits" / "alice" / "fit-1"
    fit.mkdir(parents=True)
    runfiles.write_state(fit, {"owner": "alice", "name": "fit", "state": "running", "created": 1.0, "started": 1.0,
                               "ended": None, "backend": "local", "ref": "123", "attempts": 1, "error": None,
                               "result": None})
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    wipe()
    assert new_mirror(hub).restore()
    state = runfiles.read_state(fit)
    assert state["state"] == "failed" and state["error"].endswith("while this run was running: start the fit again")


def test_a_user_removed_here_on_a_kept_disk_is_not_added_back_from_the_hub(hub, login):
    login_path, deployer = login  # the local profile: the data folder and its last sync stay
    first = new_mirror(hub, login_path)
    assert first.restore() and first.flush()
    login_path.write_bytes(deployer)  # the admin removed carol by editing the file
    assert new_mirror(hub, login_path).restore()
    assert set(load_auth_config(login_path)["credentials"]["usernames"]) == {"root"}


def test_a_busy_job_store_at_the_restore_fails_the_interrupted_run_at_the_next_try(hub, monkeypatch):
    run_id = jobs.submit(train_spec(5), owner="alice")
    with runfiles.locked():
        path = runfiles.run_dir(run_id)
        runfiles.write_state(path, runfiles.read_state(path), state="running", backend="local", ref="1",
                             started=1.0, attempts=1)
    first = new_mirror(hub)
    assert first.restore() and first.flush()
    wipe()
    real, calls = runfiles.locked, []

    def busy_once():
        calls.append(1)
        if len(calls) == 1:
            raise jobs.JobError("the job store is busy")
        return real()

    monkeypatch.setattr(runfiles, "locked", busy_once)
    second = new_mirror(hub)
    assert not second.restore() and "busy" in second.error
    assert second.restore(), second.error  # the retry
    assert runfiles.read_state(runfiles.run_dir(run_id))["state"] == "failed"
    assert second.status()["failed_runs"] == [run_id]
