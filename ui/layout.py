"""Rows of inputs that stay readable on a narrow screen."""

from __future__ import annotations

import streamlit as st


def wrapping_columns(widths: list[int]) -> list:
    """Like ``st.columns``, but each cell keeps its width (px) and the row wraps when the page is too
    narrow: in fixed columns an 800 px window cut labels and menus to "compact CI…" or "Co…"."""
    row = st.container(horizontal=True, vertical_alignment="bottom")
    return [row.container(width=width) for width in widths]
