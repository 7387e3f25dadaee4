"""The login configuration: a YAML file in streamlit-authenticator's format.

    credentials:
      usernames:
        alice: {name: Alice, email: alice@lab.org, password: <bcrypt hash>, roles: [admin]}
    cookie: {name: reflect_ml_auth, key: <32+ random bytes>, expiry_days: 7}
    allow_registration: false        # optional self-registration
    local_profile_users: [alice]     # optional: these users get the local (larger) limits

Passwords are stored only as bcrypt hashes: a plain-text password is refused,
never hashed in place (streamlit-authenticator would rewrite the file).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import atomic_write_bytes

BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
MIN_COOKIE_KEY_BYTES = 32


class AuthConfigError(InvalidInput):
    """A login configuration that would be unsafe or cannot work; the message says which entry."""


def validate_auth_config(config) -> dict:
    if not isinstance(config, dict):
        raise AuthConfigError("the login file must be a YAML mapping with 'credentials' and 'cookie'")
    users = (config.get("credentials") or {}).get("usernames")
    if not isinstance(users, dict):
        raise AuthConfigError("credentials.usernames must map user names to {name, email, password}")
    for name, entry in users.items():
        password = (entry or {}).get("password", "")
        if not isinstance(password, str) or not BCRYPT.match(password):
            raise AuthConfigError(f"credentials.usernames.{name}.password must be a bcrypt hash ($2b$…); "
                                  "plain-text passwords are refused. "
                                  "Hash one with: python -m reflect_core hash-password")
    cookie = config.get("cookie") or {}
    if len(str(cookie.get("key", "")).encode()) < MIN_COOKIE_KEY_BYTES:
        raise AuthConfigError(f"cookie.key must be at least {MIN_COOKIE_KEY_BYTES} bytes of random text")
    if not cookie.get("name"):
        raise AuthConfigError("cookie.name is missing")
    return config


def load_auth_config(path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the login file {path}: {exc.strerror}") from None
    try:
        return validate_auth_config(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"{path}: not valid YAML ({exc})") from None


def save_auth_config(path, config: dict) -> None:
    """Atomically, after a self-registration added a (hashed) user."""
    validate_auth_config(config)
    atomic_write_bytes(path, yaml.safe_dump(copy.deepcopy(config), sort_keys=False).encode())


def roles_of(config: dict, username: str) -> list[str]:
    entry = config["credentials"]["usernames"].get(username) or {}
    return list(entry.get("roles") or [])


def hash_password(password: str) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
