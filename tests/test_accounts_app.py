"""Login, per-user isolation and the history page, through AppTest."""

import secrets

import pytest
import streamlit as st
import yaml
from conftest import ROOT
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from streamlit_authenticator.utilities import Encryptor

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.accounts.auth_config import hash_password
from reflect_core.store import history, user_curves, user_files

APP = str(ROOT / "app.py")
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1", "root": "root-password-1"}


@pytest.fixture(scope="module")
def hashes():
    return {name: hash_password(pw) for name, pw in PASSWORDS.items()}


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """No login, no mode, not Cloud; secrets from an empty file of our own (never the repository's
    .streamlit/secrets.toml, which a developer may have)."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # jobs stay queued: no workers in these tests
    for name in ("AUTH_CONFIG", "REFLECT_MODE", "REFLECT_SIGNUP", "REFLECT_CLOUD", "HOSTNAME"):
        monkeypatch.delenv(name, raising=False)
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text("")
    monkeypatch.setenv("REFLECT_SECRETS_FILE", str(secrets_file))
    return secrets_file


@pytest.fixture
def login_file(app_env, tmp_path, monkeypatch, hashes):
    config = {
        "credentials": {"usernames": {
            name: {"name": name.title(), "email": f"{name}@lab.org", "password": hashes[name],
                   "roles": ["admin"] if name == "root" else []}
            for name in PASSWORDS}},
        "cookie": {"name": "reflect_test", "key": secrets.token_urlsafe(48), "expiry_days": 1},
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
    # alice's uploads: a measured curve and a model, kept as the Models page keeps them
    import hostile_corpus

    curve = "0.01 0.5 0.01\n0.02 0.05 0.001\n0.03 0.005 0.0001\n".encode()
    user_curves.save_curve(User("alice"), "alice_secret_curve.txt", curve)
    model = next(c for c in hostile_corpus.model_cases("/nonexistent") if c.name == "control.zip")
    user_files.add_model_zip(User("alice"), "alice_secret_model.zip", model.data, 10_000_000)
    bob.switch_page("app_pages/models.py").run()
    assert not bob.exception
    shown = " ".join(str(e.value) for kind in ("markdown", "caption", "info", "error", "selectbox")
                     for e in bob.get(kind) if hasattr(e, "value"))
    assert "alice_secret" not in shown and user_curves.curves(User("bob")) == []
    assert any("No models yet" in i.value for i in bob.info)
    alice.switch_page("app_pages/models.py").run()  # the control: alice does see hers
    assert any("alice_secret_curve" in str(m.value) for m in alice.markdown)

    root = log_in("root")  # admin: sees everyone's
    root.switch_page("app_pages/history.py").run()
    assert "owner" in root.dataframe[0].value.columns
    assert set(root.dataframe[0].value["owner"]) == {"alice"}  # her run and her uploaded model


def edit_login_file(path, change):
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))
    return config


def closed(at, message):
    """The app stopped before any page or login form, saying why; nobody became "local"."""
    assert not at.exception, at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 0 and len(at.text_input) == 0
    assert "current_user" not in at.session_state
    return True


def run_app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


# --- F2: configuration errors keep the app closed ----------------------------------

def test_local_mode_without_any_configuration(app_env):
    at = run_app()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2
    assert any("local: single user" in c.value for c in at.sidebar.caption)


def test_a_toml_typo_in_the_secrets_never_means_single_user(login_file, app_env, monkeypatch):
    monkeypatch.delenv("AUTH_CONFIG")  # the login setting lives only in the broken secrets file
    app_env.write_text(f'AUTH_CONFIG = "{login_file}"\nREFLECT_MODE = shared\n')  # unquoted value
    assert closed(run_app(), "cannot be read")


@pytest.fixture
def streamlit_secrets_files(app_env, monkeypatch):
    """Point Streamlit's own secrets locations (secrets.files) at files of the test's choosing."""
    monkeypatch.delenv("REFLECT_SECRETS_FILE")
    saved = st_config.get_option("secrets.files")
    st.secrets._reset()

    def use(paths):
        st_config.set_option("secrets.files", [str(p) for p in paths])
        st.secrets._reset()

    yield use
    st_config.set_option("secrets.files", saved)
    st.secrets._reset()


def test_a_broken_streamlit_secrets_file_keeps_the_app_closed(login_file, tmp_path, monkeypatch,
                                                              streamlit_secrets_files):
    monkeypatch.delenv("AUTH_CONFIG")
    broken = tmp_path / "cloud" / "secrets.toml"
    broken.parent.mkdir()
    broken.write_text(f'AUTH_CONFIG = "{login_file}"\n[cookie\n')
    streamlit_secrets_files([tmp_path / "missing" / "secrets.toml", broken])
    assert closed(run_app(), "cannot be read")


def test_a_missing_streamlit_secrets_file_is_local_mode(app_env, tmp_path, streamlit_secrets_files):
    streamlit_secrets_files([tmp_path / "missing" / "secrets.toml"])
    at = run_app()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2


def test_login_settings_from_streamlit_secrets(login_file, tmp_path, monkeypatch, streamlit_secrets_files):
    monkeypatch.delenv("AUTH_CONFIG")
    good = tmp_path / "secrets.toml"
    good.write_text(f'AUTH_CONFIG = "{login_file}"\n')
    streamlit_secrets_files([good])
    at = run_app()
    assert not at.exception and not at.error
    assert [t.label for t in at.text_input][:2] == ["Username", "Password"]


@pytest.mark.parametrize("env, message", [
    ({"REFLECT_MODE": "shared"}, "set AUTH_CONFIG"),
    ({"REFLECT_MODE": "public"}, "'local' or 'shared'"),
    ({"HOSTNAME": "streamlit"}, "Community Cloud"),
    ({"HOSTNAME": "streamlit", "REFLECT_MODE": "local"}, "Community Cloud"),
])
def test_shared_mode_never_runs_without_login(app_env, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert closed(run_app(), message)


def test_mode_from_the_secrets_file(app_env):
    app_env.write_text('REFLECT_MODE = "shared"\n')
    assert closed(run_app(), "set AUTH_CONFIG")


def test_local_mode_with_a_login_file_is_refused(login_file, monkeypatch):
    monkeypatch.setenv("REFLECT_MODE", "local")
    assert closed(run_app(), "AUTH_CONFIG is set")


# --- F9: cookie key, user names, sign-up --------------------------------------------

@pytest.mark.parametrize("key, message", [
    ("at least 32 random characters ........", "example"),
    ("replace me: python -c 'import secrets; print(secrets.token_urlsafe(48))'", "example"),
    ("k" * 40, "different characters"),
    ("some_signature_key" * 2, "example"),
    ("Xy7#Qp2!Lm9$Vb4&" * 2, "repeats"),
])
def test_guessable_cookie_keys_keep_the_app_closed(login_file, key, message):
    edit_login_file(login_file, lambda c: c["cookie"].update(key=key))
    at = run_app()
    assert closed(at, message)
    assert any("secrets.token_urlsafe(48)" in e.value for e in at.error)


def test_names_that_differ_only_by_case_keep_the_app_closed(login_file, hashes):
    def add_root(config):
        config["credentials"]["usernames"]["Root"] = {"name": "Root", "email": "Root@lab.org",
                                                      "password": hashes["alice"], "roles": ["admin"]}
    edit_login_file(login_file, add_root)
    at = run_app()
    assert closed(at, "unique ignoring case")
    assert "'root'" in at.error[0].value and "'Root'" in at.error[0].value


def test_unsafe_names_in_the_login_file_are_named(login_file, hashes):
    edit_login_file(login_file, lambda c: c["credentials"]["usernames"].update(
        {"dave@lab.org": {"name": "Dave", "email": "dave@lab.org", "password": hashes["bob"]}}))
    assert closed(run_app(), "'dave@lab.org'")


SIGN_UP = {"First name": "Carol", "Last name": "Chen", "Email": "carol@lab.org", "Username": "carol",
           "Password": "Carol-password-1!", "Repeat password": "Carol-password-1!", "Password hint": "the usual"}


def sign_up(login_file, captcha=None, **fields):
    at = run_app()
    for label, value in {**SIGN_UP, **fields}.items():
        # the login form above also has Username and Password: the sign-up form's come last
        [t for t in at.text_input if t.label == label][-1].input(value)
    key = yaml.safe_load(login_file.read_text())["cookie"]["key"]
    solution = Encryptor(key).decrypt(at.session_state["register_user_captcha"])
    [t for t in at.text_input if t.label == "Captcha"][-1].input(captcha or solution)
    next(b for b in at.button if b.label == "Register").click().run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def signup_on(login_file, monkeypatch):
    monkeypatch.setenv("REFLECT_SIGNUP", "on")
    return login_file


def test_self_registration_writes_a_hashed_user(signup_on):
    before = yaml.safe_load(signup_on.read_text())
    sign_up(signup_on)
    saved = yaml.safe_load(signup_on.read_text())["credentials"]["usernames"]
    assert "carol" in saved and saved["carol"]["password"].startswith("$2")
    assert not saved["carol"].get("roles")  # never an admin by signing up
    assert "Carol-password-1!" not in signup_on.read_text()
    assert {k: v for k, v in saved.items() if k != "carol"} == before["credentials"]["usernames"]
    assert log_in("carol", "Carol-password-1!").get("plotly_chart")


def test_sign_up_needs_the_captcha(signup_on):
    at = sign_up(signup_on, captcha="not-it")
    assert any("aptcha" in e.value for e in at.error)
    assert "carol" not in yaml.safe_load(signup_on.read_text())["credentials"]["usernames"]


@pytest.mark.parametrize("name, message", [("Alice", "taken"), ("carol@lab.org", "e-mail")])
def test_sign_up_refuses_taken_and_unsafe_names(signup_on, name, message):
    before = signup_on.read_text()
    at = sign_up(signup_on, Username=name, Email="carol@lab.org")
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert signup_on.read_text() == before


@pytest.mark.parametrize("setting, allow, shown", [(None, False, False), (None, True, True),
                                                   ("off", True, False), ("on", False, True)])
def test_signup_switch(login_file, monkeypatch, setting, allow, shown):
    edit_login_file(login_file, lambda c: c.update(allow_registration=allow))
    if setting:
        monkeypatch.setenv("REFLECT_SIGNUP", setting)
    at = run_app()
    assert not at.exception and not at.error
    assert any(b.label == "Register" for b in at.button) is shown
