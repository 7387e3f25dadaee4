"""Settings from Streamlit secrets merged with the environment (secrets win).

A missing secrets file means "nothing configured". A secrets file that exists but cannot be
read (a TOML typo, a bad secrets directory) raises ``ConfigError``: it may hold the login
settings, and guessing "empty" would open a shared app to everyone as the single local user.
``REFLECT_SECRETS_FILE`` (environment) names one TOML file to read instead of Streamlit's
secrets locations (tests use it; it must exist).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import streamlit as st

from reflect_core.base.errors import InvalidInput
from reflect_core.doctor import SECRETS_FILE_SETTING

SETTING_NAMES = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "HF_TOKEN", "HF_REPO_ID", "HF_STATE_REPO_ID", "AUTH_CONFIG",
                 "REFLECT_MODE", "REFLECT_SIGNUP", "REFLECT_CLOUD",
                 "RATE_LIMIT_SUBMIT_PER_MINUTE", "RATE_LIMIT_UPLOAD_PER_MINUTE")


class ConfigError(InvalidInput):
    """The configuration exists but cannot be read; the app must stay closed."""


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{SECRETS_FILE_SETTING} names {path}, which does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"the secrets file {path} cannot be read: {exc}") from None


def _streamlit_secret_paths() -> list[str]:
    from streamlit import config

    return list(config.get_option("secrets.files") or [])


def _holds_something(path: str) -> bool:
    """A secrets file, or a non-empty secrets directory (Kubernetes style), is there."""
    return os.path.isfile(path) or (os.path.isdir(path) and bool(os.listdir(path)))


def _secrets() -> dict:
    override = os.environ.get(SECRETS_FILE_SETTING)
    if override:
        return _read_toml(Path(override))
    try:
        return st.secrets.to_dict()
    except Exception as exc:  # noqa: BLE001 - Streamlit raises the same error for "missing" and "broken"
        present = [p for p in _streamlit_secret_paths() if _holds_something(p)]
        if not present:
            return {}  # no secrets file anywhere: nothing configured (single-user, local mode)
        raise ConfigError(f"the secrets ({', '.join(present)}) cannot be read: {exc}") from None


def app_config() -> dict:
    """Flat setting name → value; raises ConfigError when a secrets file exists but is unreadable."""
    config = {name: os.environ[name] for name in SETTING_NAMES if os.environ.get(name)}
    config.update(_secrets())
    return config
