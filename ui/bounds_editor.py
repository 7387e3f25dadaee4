"""The bounds editor: which film parameters vary (drawn for a training prior on the Train page, fitted
on the Analyse page), and within what range. Each page keeps its own table (``prefix``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from reflect_core.data.prior import Bound, free_parameters, suggest_bounds
from reflect_core.physics.film import FIELD_UNITS, MAX_SLD, MAXIMA, Film
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM

TABLE = "train_bounds_table"
TABLE_FILM = "train_bounds_film"
EDITOR = "train_bounds_editor"
# What the columns mean on each page that uses the editor: the film's value, and what "vary" does.
PURPOSES = {"train": ("The value in the explorer's film.", "Draw this parameter from [min, max]."),
            "fit": ("The start of the fit.", "Fit this parameter within [min, max]; unticked, it stays fixed.")}


def _keys(prefix: str) -> tuple[str, str, str]:
    """(table, its film, the editor widget) session keys of the page ``prefix``."""
    return (TABLE, TABLE_FILM, EDITOR) if prefix == "train" else tuple(
        f"{prefix}_bounds_{part}" for part in ("table", "film", "editor"))


def _initial_bounds(film: Film) -> dict:
    same_as_default = [l.name for l in film.layers] == [l.name for l in DEFAULT_FILM.layers]
    bounds = ([Bound(b["i"], b["par"], *b["bounds"]) for b in DEFAULT_BOUNDS] if same_as_default
              else suggest_bounds(film))
    return {(b.layer, b.par): b for b in bounds}


def _table(film: Film, bounds: dict) -> pd.DataFrame:
    rows = []
    for i, par in free_parameters(film):
        value = getattr(film.layers[i], par)
        bound = bounds.get((i, par))
        rows.append({
            "layer": f"{i}: {film.layers[i].name}", "parameter": f"{par} ({FIELD_UNITS[par]})",
            "value": value, "vary": bound is not None,
            "min": bound.lo if bound else value, "max": bound.hi if bound else value,
        })
    return pd.DataFrame(rows)


def _position(table: pd.DataFrame) -> pd.Series:
    """Where the film's value sits in [min, max] (0 to 1), for a progress-bar column."""
    low, high, value = (table[c].astype(float) for c in ("min", "max", "value"))
    span = (high - low).where(lambda s: s > 0)
    return ((value - low) / span).clip(0, 1).fillna(0.5)


def restore_bounds(film: Film, bounds: list[dict], prefix: str = "train") -> None:
    """Show exactly these bounds (pyreflect's ``layer_bound`` form) for ``film`` next time."""
    table_key, film_key, editor_key = _keys(prefix)
    chosen = {(b["i"], b["par"]): Bound(b["i"], b["par"], *b["bounds"]) for b in bounds}
    st.session_state[table_key], st.session_state[film_key] = _table(film, chosen), film.to_json()
    st.session_state.pop(editor_key, None)  # edits made in the table before belong to the old one


def render_bounds_editor(film: Film, prefix: str = "train") -> list[dict]:
    """The bounds the user chose, in pyreflect's ``layer_bound`` form."""
    table_key, film_key, editor_key = _keys(prefix)
    value_help, vary_help = PURPOSES.get(prefix, PURPOSES["train"])
    signature = film.to_json()
    if st.session_state.get(film_key) != signature:
        # The film changed in the explorer: keep ranges the user set for parameters that still exist.
        old = st.session_state.get(table_key)
        table = _table(film, _initial_bounds(film))
        if old is not None and len(old) == len(table) and list(old["parameter"]) == list(table["parameter"]):
            table[["vary", "min", "max"]] = old[["vary", "min", "max"]].values
        st.session_state[table_key], st.session_state[film_key] = table, signature
    table = st.session_state[table_key].copy()
    table["value in range"] = _position(table)
    edited = st.data_editor(
        table,
        key=editor_key,
        hide_index=True,
        width="stretch",
        disabled=["layer", "parameter", "value", "value in range"],
        column_config={
            "value": st.column_config.NumberColumn("film value", help=value_help),
            "vary": st.column_config.CheckboxColumn("vary", help=vary_help),
            # One range per column, so the widest field's; each field's own bound is checked by
            # the dataset (data.generate), which names it.
            "min": st.column_config.NumberColumn("min", format="%.4g", min_value=-MAX_SLD,
                                                 max_value=max(MAXIMA.values())),
            "max": st.column_config.NumberColumn("max", format="%.4g", min_value=-MAX_SLD,
                                                 max_value=max(MAXIMA.values())),
            "value in range": st.column_config.ProgressColumn(
                "film value within range", min_value=0.0, max_value=1.0, format=" ",
                help="Where the film's own value sits between min and max."),
        },
    )
    st.session_state[table_key] = edited.drop(columns=["value in range"])
    bounds = []
    for (i, par), row in zip(free_parameters(film), edited.itertuples()):
        if row.vary:
            bounds.append({"i": i, "par": par, "bounds": [float(row.min), float(row.max)]})
    return bounds
