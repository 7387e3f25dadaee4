"""Widget values that survive switching pages.

Streamlit forgets a widget's key when a page without that widget runs, so each
persistent widget is seeded from a shadow copy that nothing deletes.
"""

from __future__ import annotations

import streamlit as st

_SHADOW = "_keep_"


def seed(key: str, default):
    """Call before creating the widget with ``key``; returns the key."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(_SHADOW + key, default)
    return key


def keep(key: str, value):
    """Call after the widget ran: remember its value for the next visit."""
    st.session_state[_SHADOW + key] = value
    return value


def forget(key: str) -> None:
    st.session_state.pop(key, None)
    st.session_state.pop(_SHADOW + key, None)
