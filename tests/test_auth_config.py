"""The login file's checks (cookie key, user names), the deployment mode and sign-up switch."""

import base64
import os
import re
import secrets

import pytest
import yaml
from conftest import ROOT

from reflect_core.accounts.auth_config import (
    AuthConfigError,
    add_registered_user,
    check_cookie_key,
    check_login_names,
    check_new_username,
    hash_password,
    load_auth_config,
    on_community_cloud,
    resolve_mode,
    roles_of,
    signup_enabled,
    validate_auth_config,
)
from reflect_core.base.errors import InvalidInput, ReflectError

HASH = "$2b$12$" + "a" * 53


def readme_cookie_key() -> str:
    """The key the README's login example shows (people copy it)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*Login\.\*\*.*?```yaml\n(.*?)```", text, re.S).group(1)
    return yaml.safe_load(block)["cookie"]["key"]


def config_with(names=("alice",), key=None):
    return {"credentials": {"usernames": {n: {"name": n, "email": f"{n.lower()}@lab.org", "password": HASH}
                                          for n in names}},
            "cookie": {"name": "reflect_test", "key": key or secrets.token_urlsafe(48)}}


# --- cookie key -------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(48), lambda: secrets.token_urlsafe(32),
                                  lambda: secrets.token_urlsafe(24), lambda: secrets.token_hex(32),
                                  lambda: base64.b64encode(os.urandom(32)).decode()])
def test_random_keys_pass(make):
    for _ in range(200):
        key = make()
        assert check_cookie_key(key) == key


@pytest.mark.parametrize("key, reason", [
    (readme_cookie_key(), "example"),
    ("at least 32 random characters ........", "example"),
    ("some_signature_key_some_signature_key", "example"),
    ("changemechangemechangemechangeme", "example"),
    ("CHANGE-ME-" + secrets.token_urlsafe(30), "example"),
    ("k" * 40, "different characters"),
    ("ab" * 20, "different characters"),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghijklmno", "entropy"),
    ("0123456789abcdef0123456789abcdef", "repeats"),
    ("Xy7#Qp2!Lm9$Vb4&Xy7#Qp2!Lm9$Vb4&", "repeats"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "runs"),
    ("correct horse battery staple is a good key", "spaces"),
    (secrets.token_urlsafe(16), "shorter than 32"),
])
def test_guessable_keys_are_refused_with_how_to_make_one(key, reason):
    with pytest.raises(AuthConfigError, match=reason) as err:
        check_cookie_key(key)
    assert "secrets.token_urlsafe(48)" in str(err.value)
    assert key not in str(err.value)  # the message is shown to every visitor: never the key itself


def test_key_must_be_text():
    with pytest.raises(AuthConfigError, match="text"):
        check_cookie_key(12345678901234567890123456789012345)


def test_login_file_with_the_readme_key_is_refused(tmp_path):
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(config_with(key=readme_cookie_key())))
    with pytest.raises(AuthConfigError, match="cookie.key"):
        load_auth_config(path)


# --- user names -------------------------------------------------------------------

def test_names_unique_ignoring_case():
    check_login_names(["alice", "bob", "root"])
    with pytest.raises(AuthConfigError, match="unique ignoring case") as err:
        check_login_names(["alice", "root", "Root"])
    assert "'root' and 'Root'" in str(err.value)
    with pytest.raises(AuthConfigError, match="'root' and 'Root'"):
        validate_auth_config(config_with(["root", "Root"]))


@pytest.mark.parametrize("name, reason", [("bob@lab.org", "e-mail"), ("a/b", "only letters"),
                                          (".hidden", "start with '.'"), ("Local", "reserved"), (7, "text")])
def test_unsafe_names_in_the_file_are_named(name, reason):
    with pytest.raises(AuthConfigError, match=reason) as err:
        check_login_names(["alice", name])
    assert "alice" not in str(err.value)


def test_new_usernames():
    assert check_new_username("carol", ["alice", "Bob"]) == "carol"
    with pytest.raises(InvalidInput, match="already taken"):
        check_new_username("bob", ["alice", "Bob"])
    with pytest.raises(InvalidInput, match="e-mail"):
        check_new_username("carol@lab.org", ["alice"])
    with pytest.raises(InvalidInput, match="reserved"):
        check_new_username("local", [])


def test_roles_ignore_case():
    config = config_with(["Root", "bob"])
    config["credentials"]["usernames"]["Root"]["roles"] = ["admin"]
    assert roles_of(config, "root") == ["admin"]
    assert roles_of(config, "bob") == [] and roles_of(config, "nobody") == []


def test_add_registered_user_writes_only_the_new_entry(tmp_path):
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(config_with(["alice"])))
    entry = {"email": "carol@lab.org", "first_name": "Carol", "last_name": "Chen", "logged_in": False,
             "password": hash_password("Carol-password-1!"), "roles": None, "failed_login_attempts": 0}
    add_registered_user(path, "carol", entry)
    saved = yaml.safe_load(path.read_text())["credentials"]["usernames"]
    assert set(saved) == {"alice", "carol"}
    assert set(saved["carol"]) == {"email", "first_name", "last_name", "password"}
    for name in ("Carol", "dave@lab.org"):
        with pytest.raises(ReflectError):
            add_registered_user(path, name, entry)
    assert set(yaml.safe_load(path.read_text())["credentials"]["usernames"]) == {"alice", "carol"}


# --- mode and sign-up ---------------------------------------------------------------

@pytest.mark.parametrize("setting, login, cloud, expected", [
    (None, None, False, "local"), ("", None, False, "local"), ("local", None, False, "local"),
    (None, "auth.yaml", False, "shared"), ("shared", "auth.yaml", False, "shared"),
    (" Shared ", "auth.yaml", False, "shared"), (None, "auth.yaml", True, "shared"),
])
def test_modes(setting, login, cloud, expected):
    assert resolve_mode(setting, login, cloud) == expected


@pytest.mark.parametrize("setting, login, cloud, message", [
    ("shared", None, False, "set AUTH_CONFIG"),
    (None, None, True, "Community Cloud"),
    ("local", "auth.yaml", True, "Community Cloud"),
    ("local", None, True, "Community Cloud"),
    ("local", "auth.yaml", False, "AUTH_CONFIG is set"),
    ("multi", "auth.yaml", False, "'local' or 'shared'"),
    (True, "auth.yaml", False, "'local' or 'shared'"),
])
def test_modes_that_stop_the_app(setting, login, cloud, message):
    with pytest.raises(AuthConfigError, match=message):
        resolve_mode(setting, login, cloud)


def test_community_cloud_signals():
    assert on_community_cloud({"HOSTNAME": "streamlit"}, "/home/me/app")
    assert on_community_cloud({}, "/mount/src/reflect-ml")
    assert not on_community_cloud({"HOSTNAME": "lab-server"}, "/home/me/app")
    assert not on_community_cloud({}, "/mount/srcx")


@pytest.mark.parametrize("setting, allow, expected", [
    (None, None, False), (None, True, True), ("", True, True), ("off", True, False), ("OFF", True, False),
    ("on", None, True), (True, None, True), (False, True, False),
])
def test_signup_switch(setting, allow, expected):
    config = {} if allow is None else {"allow_registration": allow}
    assert signup_enabled(setting, config) is expected


def test_invalid_signup_setting_is_refused():
    with pytest.raises(AuthConfigError, match="'on' or 'off'"):
        signup_enabled("maybe", {})
