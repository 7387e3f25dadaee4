"""Login, per-user isolation and the history page, through AppTest."""

import pytest
import yaml
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.accounts.auth_config import hash_password
from reflect_core.store import history

APP = str(ROOT / "app.py")
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1", "root": "root-password-1"}


@pytest.fixture(scope="module")
def hashes():
    return {name: hash_password(pw) for name, pw in PASSWORDS.items()}


@pytest.fixture
def login_file(tmp_path, monkeypatch, hashes):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # jobs stay queued: no workers in these tests
    config = {
        "credentials": {"usernames": {
            name: {"name": name.title(), "email": f"{name}@lab.org", "password": hashes[name],
                   "roles": ["admin"] if name == "root" else []}
            for name in PASSWORDS}},
        "cookie": {"name": "reflect_test", "key": "k" * 40, "expiry_days": 1},
    }
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("AUTH_CONFIG", str(path))
    return path


def log_in(name, password=None):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input[0].input(name)
    at.text_input[1].input(password or PASSWORDS[name])
    next(b for b in at.button if b.label == "Login").click().run()
    return at


def test_nothing_renders_before_login(login_file):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 0
    assert [t.label for t in at.text_input][:2] == ["Username", "Password"]


def test_login_and_wrong_password(login_file):
    at = log_in("alice")
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert any("Signed in as **alice**" in c.value for c in at.sidebar.caption)
    bad = log_in("alice", "not-her-password")
    assert len(bad.get("plotly_chart")) == 0
    assert any("Wrong user name or password" in e.value for e in bad.error)


def test_plain_text_passwords_keep_the_app_closed(login_file):
    config = yaml.safe_load(login_file.read_text())
    config["credentials"]["usernames"]["alice"]["password"] = "plain-text"
    login_file.write_text(yaml.safe_dump(config))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any("bcrypt" in e.value for e in at.error)
    assert len(at.text_input) == 0


def test_shared_profile_limits_are_shown_and_enforced(login_file):
    at = log_in("alice")
    at.switch_page("app_pages/train.py").run()
    assert any("shared profile" in c.value for c in at.caption)
    assert at.number_input(key="train_n").max == 5000
    assert at.number_input(key="train_epochs").max == 50


def test_users_see_only_their_own_runs_and_records(login_file):
    alice = log_in("alice")
    alice.switch_page("app_pages/train.py").run()
    for key, value in {"train_n": 200, "train_epochs": 2, "train_layers": 1}.items():
        alice.number_input(key=key).set_value(value)
    alice.run()
    next(b for b in alice.button if b.label == "Train").click().run()
    assert not alice.exception
    [run] = jobs.list_runs()
    assert run.owner == "alice"
    [record] = history.list_records(User("alice"))
    assert record["run_id"] == run.run_id

    bob = log_in("bob")
    bob.switch_page("app_pages/train.py").run()
    assert any("No training runs yet" in c.value for c in bob.caption)
    bob.switch_page("app_pages/history.py").run()
    assert any("Nothing here yet" in i.value for i in bob.info)
    bob.switch_page("app_pages/models.py").run()
    assert not bob.exception

    root = log_in("root")  # admin: sees everyone's
    root.switch_page("app_pages/history.py").run()
    assert "owner" in root.dataframe[0].value.columns
    assert list(root.dataframe[0].value["owner"]) == ["alice"]




def test_self_registration_writes_a_hashed_user(login_file):
    config = yaml.safe_load(login_file.read_text())
    config["allow_registration"] = True
    login_file.write_text(yaml.safe_dump(config))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for label, value in (("First name", "Carol"), ("Last name", "Chen"), ("Email", "carol@lab.org"),
                         ("Username", "carol"), ("Password", "Carol-password-1!"),
                         ("Repeat password", "Carol-password-1!"), ("Password hint", "the usual")):
        # the login form above also has Username and Password: the sign-up form's come last
        [t for t in at.text_input if t.label == label][-1].input(value)
    next(b for b in at.button if b.label == "Register").click().run()
    assert not at.exception, at.exception
    saved = yaml.safe_load(login_file.read_text())["credentials"]["usernames"]
    assert "carol" in saved and saved["carol"]["password"].startswith("$2")
    assert "Carol-password-1!" not in login_file.read_text()
