"""Rename and Delete for one stored thing (a measured curve, a model), as History does them:
Rename in a small popover, Delete asks first, and a refusal is said on the page."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from reflect_core.base.errors import ReflectError

MESSAGE = "manage_message"  # (kind, text) said once, on the next run


def show_message() -> None:
    if message := st.session_state.pop(MESSAGE, None):
        getattr(st, message[0])(message[1])


def _confirming(key: str) -> str:
    return f"manage_confirm_{key}"


def _said(kind: str, text: str) -> None:
    st.session_state[MESSAGE] = (kind, text)


def _rename(key: str, what: str, rename: Callable[[str], object]) -> None:
    try:
        rename(st.session_state[f"manage_name_{key}"])
    except (ReflectError, OSError) as exc:  # an empty or too long name, the item gone
        _said("error", f"{what[0].upper()}{what[1:]} was not renamed: {exc}")
        return
    _said("success", f"Renamed {what}.")


def _delete(key: str, what: str, delete: Callable[[], str | None]) -> None:
    st.session_state.pop(_confirming(key), None)
    try:
        left = delete()  # a sentence when a copy elsewhere (the Hub) could not be removed
    except (ReflectError, OSError) as exc:
        _said("error", f"{what[0].upper()}{what[1:]} was not deleted: {exc}")
        return
    _said("warning", left) if left else _said("success", f"Deleted {what}.")


def manage_buttons(container, key: str, what: str, name: str, rename: Callable[[str], object] | None,
                   delete: Callable[[], object], delete_says: str) -> None:
    """Rename (when ``rename`` is given) and Delete buttons for one item, in ``container``. ``what``
    names the item in messages ("curve 'x.txt'"); ``delete_says`` what Delete removes."""
    confirming = _confirming(key)
    if st.session_state.get(confirming):
        box = container.container()
        box.warning(f"Delete {what}? {delete_says} This cannot be undone.")
        row = box.container(horizontal=True)
        row.button("Yes, delete it", key=f"manage_yes_{key}", type="primary", on_click=_delete,
                   args=(key, what, delete))
        row.button("Keep it", key=f"manage_keep_{key}", on_click=st.session_state.pop, args=(confirming, None))
        return
    row = container.container(horizontal=True, horizontal_alignment="right")
    if rename is not None:
        with row.popover("Rename"):
            st.text_input("New name", value=name, max_chars=80, key=f"manage_name_{key}")
            st.button("Save", key=f"manage_save_{key}", on_click=_rename, args=(key, what, rename))
    row.button("Delete", key=f"manage_delete_{key}", on_click=st.session_state.__setitem__, args=(confirming, True))
