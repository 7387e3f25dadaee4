"""The sidebar every page shares: what this installation can and cannot do."""

from __future__ import annotations

import streamlit as st

from reflect_core.base.engines import engine_statuses

from .config import app_config

MODE_LABELS = {"local": "local: single user, no login", "shared": "shared: login required"}


def render_engine_status(mode: str | None = None) -> None:
    with st.sidebar.expander("Engines and services", expanded=True):
        if mode:
            st.caption(f"Mode (REFLECT_MODE): {MODE_LABELS.get(mode, mode)}")
        for status in engine_statuses(app_config()):
            icon = ":material/check_circle:" if status.available else ":material/radio_button_unchecked:"
            st.markdown(f"{icon} **{status.name}**: {status.detail}")
