"""Settings from Streamlit secrets merged with the environment, never raising."""

from __future__ import annotations

import os

import streamlit as st

SETTING_NAMES = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "HF_TOKEN", "HF_REPO_ID", "AUTH_CONFIG",
                 "RATE_LIMIT_SUBMIT_PER_MINUTE", "RATE_LIMIT_UPLOAD_PER_MINUTE")


def _secrets() -> dict:
    # st.secrets raises when no secrets.toml exists; a missing file means "nothing configured".
    try:
        return {k: st.secrets[k] for k in st.secrets.keys()}
    except Exception:  # noqa: BLE001 - FileNotFoundError or a parse error: treat as empty
        return {}


def app_config() -> dict:
    config = {name: os.environ[name] for name in SETTING_NAMES if os.environ.get(name)}
    config.update(_secrets())
    return config
