"""The state mirror in the app (AppTest): the history saved before a restart is on the first page
rendered after it; a shared deployment without a Hub repo says on every page, the login page
too, that work is lost at a restart; an unreachable Hub is a warning, not a broken app."""

from __future__ import annotations

import shutil

import huggingface_hub
import huggingface_hub.constants
import pytest
import streamlit as st
from conftest import ROOT
from hub_fakes import FakeStateHub
from streamlit.testing.v1 import AppTest
from test_accounts_app import app_env, hashes, login_file  # noqa: F401 - fixtures

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.accounts.auth_config import add_registered_user, hash_password
from reflect_core.base.storage import data_dir
from reflect_core.store import history, mirror
from reflect_core.store.mirror import Mirror, MirrorSettings

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test is a new server process: no mirror, no cached start, a fake Hub for ``HfApi``."""
    hub = FakeStateHub()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: hub)
    mirror.reset()
    st.cache_resource.clear()
    yield hub
    mirror.reset()
    st.cache_resource.clear()


def test_the_history_saved_before_a_restart_is_on_the_first_page_after_it(app_env, fresh_process):  # noqa: F811
    app_env.write_text('HF_TOKEN = "hf_fake"\nHF_STATE_REPO_ID = "me/reflect-state"\n')
    history.add(LOCAL_USER, "film", "saved before the restart", {"film": {"layers": []}})
    before = Mirror(MirrorSettings("me/reflect-state", "hf_fake", None, "HF_STATE_REPO_ID"), api=fresh_process)
    assert before.restore() and before.flush()
    shutil.rmtree(data_dir())

    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/history.py").run()
    assert not at.exception, at.exception
    assert any("saved before the restart" in str(df.value) for df in at.dataframe)
    assert any("Your work is kept in the Hub dataset me/reflect-state" in c.value for c in at.caption)
    assert mirror.mirror_status()["restored"] is True


def test_someone_who_signed_up_before_a_restart_can_log_in_after_it(app_env, login_file, fresh_process):  # noqa: F811
    app_env.write_text('HF_TOKEN = "hf_fake"\nHF_REPO_ID = "me/reflect"\n')
    deployer = login_file.read_bytes()
    add_registered_user(login_file, "carol", {"name": "Carol", "email": "carol@lab.org",
                                              "password": hash_password("carol-password-1")})
    before = Mirror(MirrorSettings("me/reflect", "hf_fake", str(login_file), "HF_REPO_ID"), api=fresh_process)
    assert before.restore() and before.flush()
    shutil.rmtree(data_dir())
    login_file.write_bytes(deployer)  # the redeploy brings back the committed login file, without carol

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input[0].input("carol")
    at.text_input[1].input("carol-password-1")
    next(b for b in at.button if b.label == "Login").click().run()
    assert not at.exception, at.exception
    assert any("Signed in as **carol**" in c.value for c in at.sidebar.caption)
    assert any("Your work is kept in a private Hub dataset" in c.value for c in at.caption)


def test_a_shared_app_without_a_hub_repo_says_work_is_lost_at_restart(login_file):  # noqa: F811
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert any("lost when the app restarts" in w.value for w in at.warning)  # on the login page already


def test_an_unreachable_hub_is_a_warning_and_the_app_still_works(app_env, login_file, fresh_process):  # noqa: F811
    app_env.write_text('HF_TOKEN = "hf_fake"\nHF_REPO_ID = "me/reflect"\n')
    fresh_process.unreachable = True
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("not being saved to the Hub right now" in w for w in warnings), warnings
    assert not any("me/reflect" in w or "cannot be reached" in w for w in warnings)  # not before login
    assert "the Hub cannot be reached" in mirror.mirror_status()["error"]
    assert [t.label for t in at.text_input][:2] == ["Username", "Password"]


def test_a_mirror_set_badly_says_so_without_promising_a_retry(app_env):  # noqa: F811
    app_env.write_text('HF_TOKEN = "hf_fake"\nHF_STATE_REPO_ID = "not a repo"\n')
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    [warning] = [w.value for w in at.warning if "not being saved" in w.value]
    assert "is not a Hub repo id" in warning and "retried" not in warning
    assert "until the settings are fixed" in warning
