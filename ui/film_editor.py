"""The layer editor: one row of inputs per layer, substrate at the top of the table.

The film lives in ``st.session_state["film_rows"]`` (a list of dicts with a
stable ``uid``), so values stay with their layer when rows move, and survive
page switches (widget keys are re-seeded from the rows).
"""

from __future__ import annotations

import itertools

import streamlit as st

from reflect_core.physics.film import (
    FIELD_UNITS,
    LAYER_FIELDS,
    MAX_SLD,
    MAXIMA,
    Film,
    FilmError,
    check_layer,
    layer_from_mapping,
)
from reflect_core.physics.presets import DEFAULT_FILM

ROWS = "film_rows"
BEAM = "film_beam"
UNDO = "film_undo"
NAME = "film_name"  # the loaded film's own name (an upload's, a preset's), kept for saving and downloads

HELP = {
    "name": "A label for the layer; it is not used in the physics.",
    "sld": "Scattering length density, real part, in 10⁻⁶ Å⁻². Negative values are physical (H2O −0.56, Ti −1.95).",
    "isld": "Absorption (imaginary SLD), ≥ 0, in 10⁻⁶ Å⁻². The incident medium's absorption is ignored.",
    "thickness": "Layer thickness in Å. Ignored for the substrate and the ambient (semi-infinite).",
    "roughness": "rms width (Å) of the interface between this layer and the one above it (toward the ambient).",
}
LABELS = {
    "name": "Layer",
    "sld": f"SLD ({FIELD_UNITS['sld']})",
    "isld": f"iSLD ({FIELD_UNITS['isld']})",
    "thickness": f"Thickness ({FIELD_UNITS['thickness']})",
    "roughness": f"Roughness ({FIELD_UNITS['roughness']})",
}
_uids = itertools.count()


def _row(layer) -> dict:
    return {"uid": f"{next(_uids)}", "name": layer.name, **{f: getattr(layer, f) for f in LAYER_FIELDS}}


def load_film(film: Film, remember_undo: bool = True) -> None:
    """Replace the edited film (keeping the old one for one undo)."""
    if remember_undo and ROWS in st.session_state:
        st.session_state[UNDO] = (st.session_state[ROWS], st.session_state.get(BEAM, "ambient"),
                                  st.session_state.get(NAME, ""))
    st.session_state[ROWS] = [_row(layer) for layer in film.layers]
    st.session_state[BEAM] = film.beam_from
    st.session_state[NAME] = film.name


def undo_load() -> None:
    rows, beam, name = st.session_state.pop(UNDO)
    st.session_state[ROWS], st.session_state[BEAM], st.session_state[NAME] = rows, beam, name


def ensure_film() -> None:
    if ROWS not in st.session_state:
        load_film(DEFAULT_FILM, remember_undo=False)


def current_film() -> Film:
    """The edited film; raises FilmError naming the layer and field."""
    rows = st.session_state[ROWS]
    layers = tuple(layer_from_mapping(row, i) for i, row in enumerate(rows))
    return Film(layers=layers, beam_from=st.session_state.get(BEAM, "ambient"), name=st.session_state.get(NAME, ""))


def _move(index: int, offset: int) -> None:
    rows = st.session_state[ROWS]
    j = index + offset
    if 0 <= j < len(rows):
        rows[index], rows[j] = rows[j], rows[index]


def _remove(index: int) -> None:
    st.session_state[ROWS].pop(index)


def _add() -> None:
    rows = st.session_state[ROWS]
    new = {"uid": f"{next(_uids)}", "name": f"layer {len(rows) - 1}", "sld": 2.0, "isld": 0.0,
           "thickness": 50.0, "roughness": 5.0}
    rows.insert(max(len(rows) - 1, 1), new)  # just below the ambient


def _disabled(field: str, index: int, n_rows: int) -> bool:
    if field == "thickness":
        return index in (0, n_rows - 1)
    return field == "roughness" and index == n_rows - 1


def _row_error(row: dict, index: int) -> str | None:
    try:
        check_layer(layer_from_mapping(row, index), index)
    except FilmError as exc:
        return str(exc)
    return None


def render_layer_editor(max_layers: int = 20) -> None:
    rows = st.session_state[ROWS]
    widths = [1.9, 1.3, 1.3, 1.4, 1.4, 0.55, 0.55, 0.55]
    header = st.columns(widths)
    for col, field in zip(header, ("name",) + LAYER_FIELDS):
        col.markdown(f"**{LABELS[field]}**", help=HELP[field])
    n = len(rows)
    for index, row in enumerate(rows):
        cols = st.columns(widths, vertical_alignment="center")
        role = "substrate" if index == 0 else "ambient" if index == n - 1 else f"layer {index}"
        key = f"L{row['uid']}_name"
        if key not in st.session_state:
            st.session_state[key] = row["name"]
        row["name"] = cols[0].text_input(f"Name of {role}", key=key, label_visibility="collapsed",
                                         placeholder=role)
        for col, field in zip(cols[1:5], LAYER_FIELDS):
            key = f"L{row['uid']}_{field}"
            if key not in st.session_state:
                st.session_state[key] = float(row[field])
            # A value out of range cannot be drawn (Streamlit refuses): clamped, never expected.
            st.session_state[key] = min(st.session_state[key], MAXIMA[field])
            if field == "sld":
                st.session_state[key] = max(st.session_state[key], -MAX_SLD)
            row[field] = col.number_input(
                f"{LABELS[field]} of {role}",
                key=key,
                # The physical bounds (physics.film); below zero is left to the row's message.
                min_value=-MAX_SLD if field == "sld" else None,
                max_value=MAXIMA[field],
                step=0.1 if field in ("sld", "isld") else 1.0,
                format="%.4g",
                disabled=_disabled(field, index, n),
                label_visibility="collapsed",
            )
        cols[5].button("↑", key=f"up_{row['uid']}", help="Move toward the substrate", on_click=_move,
                       args=(index, -1), disabled=index == 0)
        cols[6].button("↓", key=f"down_{row['uid']}", help="Move toward the ambient", on_click=_move,
                       args=(index, 1), disabled=index == n - 1)
        cols[7].button("✕", key=f"del_{row['uid']}", help="Remove this layer", on_click=_remove,
                       args=(index,), disabled=n <= 2)
        error = _row_error(row, index)
        if error:
            st.error(error, icon="⚠️")
    st.button(":material/add: Add layer", on_click=_add, disabled=n >= max_layers,
              help=f"Adds a layer just below the ambient (at most {max_layers} layers).")
