"""Widget values that survive switching pages, and values shared between pages.

Streamlit forgets a widget's key when a page without that widget runs, so each
persistent widget is seeded from a shadow copy that nothing deletes. Widgets on
different pages never share a key (Streamlit resets a key that another page's
widget used); they share a value by naming the same shadow (``name``).
"""

from __future__ import annotations

import streamlit as st

_SHADOW = "_keep_"


def seed(key: str, default, name: str | None = None):
    """Call before creating the widget with ``key``; returns the key."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(_SHADOW + (name or key), default)
    return key


def remembered(name: str, default=None):
    """The value last kept under ``name`` (by this page or another)."""
    return st.session_state.get(_SHADOW + name, default)


def keep(name: str, value):
    """Call after the widget ran: remember its value for the next visit (and other pages)."""
    st.session_state[_SHADOW + name] = value
    return value


def choose_newest_first(label: str, runs: list, key: str, describe, empty: str):
    """A selector over ``runs`` (newest first, each with a ``run_id``), starting on the newest while the
    chosen one is gone; the chosen run, or None after showing ``empty`` when there are none."""
    if not runs:
        st.caption(empty)
        return None
    ids = [r.run_id for r in runs]
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    chosen = st.selectbox(label, ids, key=key, format_func=lambda i: describe(runs[ids.index(i)]))
    return runs[ids.index(chosen)]
