"""Work in progress kept per user across browser refreshes, closed tabs and restarts
(``reflect_core.store.workspace``): the explorer's film and instrument settings, and the Train
form's settings.

Pages call ``restore_*`` before their widgets are drawn (only the first time in a browser session:
a session's own state is newer than the disk) and ``keep_*`` after a run, which writes only when
something changed. A saved document that is unreadable or no longer valid is dropped with a
message; a disk that refuses a write is said once and the page goes on.
"""

from __future__ import annotations

import json

import streamlit as st

from reflect_core.base.errors import ReflectError
from reflect_core.physics.film import film_from_dict
from reflect_core.store import workspace
from ui.session import current_user
from ui.state import keep, remembered

# The explorer's instrument settings (ui.state shadows shared with the Train page) and their types.
INSTRUMENT = {"qmin": float, "qmax": float, "nq": int, "spacing": str, "dq_percent": float, "background": float,
              "scale": float, "plot": str, "log_q": bool, "graded": bool}
_WRITTEN = "_workspace_written_"  # + name: the document last written by this session
_RESTORED = "_workspace_restored_"  # + name: this session has read the disk once
NOTICE = "workspace_notice"


def _restore_once(name: str):
    """The kept document, the first time this browser session asks; else None."""
    if st.session_state.get(_RESTORED + name):
        return None
    st.session_state[_RESTORED + name] = True
    document, problem = workspace.load(current_user(), name)
    if problem:
        st.session_state[NOTICE] = f"Starting from the defaults: {problem}."
    if document is not None:
        st.session_state[_WRITTEN + name] = json.dumps(document, sort_keys=True)
    return document


def restore_explorer(load_film) -> bool:
    """Put the kept film (through ``load_film``) and instrument settings back; True when it did."""
    document = _restore_once("explorer")
    if document is None:
        return False
    try:
        film = film_from_dict(document.get("film"))
    except ReflectError as exc:
        st.session_state[NOTICE] = f"Your saved film could not be used ({exc}); starting from the default film."
        return False
    load_film(film)
    for name, kind in INSTRUMENT.items():
        value = (document.get("instrument") or {}).get(name)
        if type(value) is kind or (kind is float and type(value) is int):
            keep(name, kind(value))  # the pages' own bounds check each value again when they draw it
    st.session_state[NOTICE] = "Your film and settings from your last visit are back (kept for you on this server)."
    return True


def _write(name: str, document: dict) -> None:
    text = json.dumps(document, sort_keys=True)
    if st.session_state.get(_WRITTEN + name) == text:
        return
    try:
        workspace.save(current_user(), name, document)
        st.session_state[_WRITTEN + name] = text
    except ReflectError as exc:
        if st.session_state.get(_WRITTEN + name) != "failed":
            st.warning(f"Your work could not be kept across a refresh: {exc}")
        st.session_state[_WRITTEN + name] = "failed"


def keep_explorer(film) -> None:
    """After a run with a valid film: keep it and the instrument settings when they changed."""
    _write("explorer", {"film": film.to_dict(), "instrument": {n: remembered(n) for n in INSTRUMENT
                                                               if remembered(n) is not None}})


def restore_train(restore) -> None:
    """The Train form's kept settings back into its widgets (through ``restore(raw)``), once a session."""
    document = _restore_once("train")
    if document is None:
        return
    try:
        restore(document)
    except ReflectError as exc:
        st.session_state[NOTICE] = f"Your saved Train settings could not be used ({exc}); starting from the defaults."


def keep_train(raw_spec: dict) -> None:
    _write("train", raw_spec)


def render_notice() -> None:
    """Once: what was restored (or why not), and where the work is kept."""
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.toast(notice, icon=":material/restore:")
