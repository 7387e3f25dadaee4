"""The layer editor: one table (Streamlit's data editor), substrate in the top row, ambient in the last.

The film lives in ``st.session_state["film_rows"]`` (a list of dicts: ``name`` and the layer
fields), so it survives page switches. Cell edits, moves, removals, additions and loads all go
through ``ui.layer_edits`` (which refuses a bad value and keeps the previous one, with a note)
and each can be undone, newest first. The table widget is re-created (a new key) whenever the
rows change, so it never shows stale cells.
"""

from __future__ import annotations

import streamlit as st

from reflect_core.physics.film import FIELD_UNITS, LAYER_FIELDS, Film, FilmError, check_layer, layer_from_mapping
from reflect_core.physics.presets import DEFAULT_FILM
from ui import layer_edits, workspace
from ui.layer_edits import MAX_NAME, MINIMA, Edit, role

ROWS = "film_rows"
BEAM = "film_beam"
UNDO = "film_undo"  # [(what the edit did, (rows, beam, name))], newest last
NAME = "film_name"  # the loaded film's own name (an upload's, a preset's), kept for saving and downloads
NOTES = "film_table_notes"  # why the last edit's refused values were not taken
VERSION = "film_table_version"
PICKED = "film_table_picked"
TUNED = "film_tuned"  # the layer the tuner edits
MAX_UNDO = 50
# The tuner's +/− steps: about what changes a curve visibly without jumping past a feature.
STEPS = {"sld": 0.1, "isld": 0.01, "thickness": 1.0, "roughness": 0.5}

HELP = {
    "name": "A label for the layer; it is not used in the physics.",
    "sld": "Scattering length density, real part, in 10⁻⁶ Å⁻². Negative values are physical (H2O −0.56, Ti −1.95).",
    "isld": "Absorption (imaginary SLD), ≥ 0, in 10⁻⁶ Å⁻². The incident medium's absorption is ignored.",
    "thickness": "Layer thickness in Å. Empty for the substrate and the ambient (semi-infinite).",
    "roughness": "rms width (Å) of the interface between this layer and the one above it (toward the ambient). "
    "Empty for the ambient (nothing above it).",
}
LABELS = {
    "name": "Layer",
    "sld": f"SLD ({FIELD_UNITS['sld']})",
    "isld": f"iSLD ({FIELD_UNITS['isld']})",
    "thickness": f"Thickness ({FIELD_UNITS['thickness']})",
    "roughness": f"Roughness ({FIELD_UNITS['roughness']})",
}
COLUMNS = {
    "position": st.column_config.TextColumn("Position", disabled=True, width="small",
                                            help="Substrate first, ambient last; moved with the buttons below."),
    "name": st.column_config.TextColumn(LABELS["name"], help=HELP["name"], max_chars=MAX_NAME, required=True),
    # The default number format (up to four decimals) keeps 178.66 as typed; a step-based one showed 178.6.
    **{f: st.column_config.NumberColumn(LABELS[f], help=HELP[f], min_value=MINIMA[f], max_value=layer_edits.MAXIMA[f])
       for f in LAYER_FIELDS},
}


def _row(layer) -> dict:
    return {"name": layer.name, **{f: getattr(layer, f) for f in LAYER_FIELDS}}


def _snapshot() -> tuple:
    return ([dict(r) for r in st.session_state[ROWS]], st.session_state.get(BEAM, "ambient"),
            st.session_state.get(NAME, ""))


def _fresh_table() -> None:
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1


def _remember(what: str) -> None:
    stack = st.session_state.setdefault(UNDO, [])
    stack.append((what, _snapshot()))
    del stack[:-MAX_UNDO]


def load_film(film: Film, remember_undo: bool = True) -> None:
    """Replace the edited film (undoable)."""
    if remember_undo and ROWS in st.session_state:
        _remember(f"loading '{film.name}'" if film.name else "the last load")
    st.session_state[ROWS] = [_row(layer) for layer in film.layers]
    st.session_state[BEAM] = film.beam_from
    st.session_state[NAME] = film.name
    st.session_state[NOTES] = ()
    _fresh_table()


def undo_label() -> str | None:
    stack = st.session_state.get(UNDO)
    return stack[-1][0] if stack else None


def undo() -> None:
    what, (rows, beam, name) = st.session_state[UNDO].pop()
    st.session_state[ROWS], st.session_state[BEAM], st.session_state[NAME] = rows, beam, name
    st.session_state[NOTES] = (f"Undone: {what}.",)
    _fresh_table()


def ensure_film() -> None:
    """The film of this browser session; at its start, the user's kept film (ui.workspace) or the default."""
    if ROWS not in st.session_state and not workspace.restore_explorer(lambda f: load_film(f, remember_undo=False)):
        load_film(DEFAULT_FILM, remember_undo=False)


def current_film() -> Film:
    """The edited film; raises FilmError naming the layer and field."""
    rows = st.session_state[ROWS]
    layers = tuple(layer_from_mapping(row, i) for i, row in enumerate(rows))
    return Film(layers=layers, beam_from=st.session_state.get(BEAM, "ambient"), name=st.session_state.get(NAME, ""))


def _apply(edit: Edit, recreate_table: bool = True) -> None:
    """Take an edit's rows (undoable) and notes, and re-create the table. Even after its own edit: a
    table that keeps its edits sends them again once it has drawn the new rows (a second rerun per
    edit, measured in the browser), and shows a refused value until re-created. Edits made elsewhere
    (the tuner) leave the table holding no edits of its own: it keeps its key and only gets new
    values, which spares the browser re-mounting the grid."""
    if edit.changed:
        _remember(edit.changed)
        st.session_state[ROWS] = edit.rows
    st.session_state[NOTES] = edit.notes
    if recreate_table and (edit.changed or edit.notes):
        _fresh_table()


def _on_table_edit(key: str) -> None:
    state = st.session_state.get(key) or {}
    _apply(layer_edits.apply_cell_edits(st.session_state[ROWS], state.get("edited_rows")))


def _keep_index(key: str, allowed: range, default: int) -> None:
    """A layer selector's value before it is drawn: ``default`` when it is not a layer any more. After a
    removal Streamlit can hand back the old option's label (a string) instead of an index."""
    value = st.session_state.get(key)
    if not (isinstance(value, int) and value in allowed):
        st.session_state[key] = default


def _tuner_key(field: str) -> str:
    return f"film_tune_{field}"


def _on_tune(field: str) -> None:
    index = st.session_state[TUNED]
    edit = layer_edits.apply_cell_edits(st.session_state[ROWS], {index: {field: st.session_state[_tuner_key(field)]}})
    _apply(edit, recreate_table=False)


def render_layer_tuner() -> None:
    """One layer's values as number inputs with +/− steps, for watching the curves move. The fast way
    to edit: a typed value is sent on Enter (the table waits 150 ms after an edit before sending)."""
    rows = st.session_state[ROWS]
    n = len(rows)
    _keep_index(TUNED, range(n), min(1, n - 1))  # at first, the first layer above the substrate
    row = st.container(horizontal=True, vertical_alignment="bottom")
    index = row.selectbox("Tune a layer", range(n), key=TUNED,
                          format_func=lambda i: f"{role(i, n)}: {rows[i]['name']}"[:60], width=200,
                          help="Edit one layer with steps; the table below holds every layer.")
    for field in LAYER_FIELDS:
        key = _tuner_key(field)
        # Always the film's value: it follows table edits, undo and loads, and a refused entry is put back.
        st.session_state[key] = None if layer_edits.unused(field, index, n) else float(rows[index][field])
        row.number_input(LABELS[field], key=key, min_value=MINIMA[field], max_value=layer_edits.MAXIMA[field],
                         step=STEPS[field], format="%g", disabled=st.session_state[key] is None,
                         on_change=_on_tune, args=(field,), help=HELP[field], width=150)


def _on_structure(action: str, max_layers: int) -> None:
    rows, index = st.session_state[ROWS], st.session_state.get(PICKED, 1)
    edit = {"up": lambda: layer_edits.move(rows, index, -1), "down": lambda: layer_edits.move(rows, index, 1),
            "remove": lambda: layer_edits.remove(rows, index),
            "add": lambda: layer_edits.add(rows, max_layers)}[action]()
    _apply(edit)
    if action in ("up", "down") and edit.changed:
        st.session_state[PICKED] = index + (-1 if action == "up" else 1)  # the picked layer is followed


def _row_error(row: dict, index: int) -> str | None:
    try:
        check_layer(layer_from_mapping(row, index), index)
    except FilmError as exc:
        return str(exc)
    return None


def render_layer_editor(max_layers: int = 20) -> None:
    rows = st.session_state[ROWS]
    n = len(rows)
    key = f"film_table_{st.session_state.get(VERSION, 0)}"
    st.data_editor(layer_edits.table_rows(rows), key=key, on_change=_on_table_edit, args=(key,), hide_index=True,
                   column_config=COLUMNS, column_order=("position", "name") + LAYER_FIELDS, num_rows="fixed",
                   width="stretch", placeholder="—")
    for note in st.session_state.get(NOTES, ()):
        st.warning(note, icon=":material/undo:" if note.startswith("Undone") else "⚠️")
    for index, row in enumerate(rows):
        error = _row_error(row, index)
        if error:
            st.error(error, icon="⚠️")
    _structure_controls(rows, n, max_layers)


def _structure_controls(rows: list[dict], n: int, max_layers: int) -> None:
    """Move, remove and add layers; undo the last edit of any kind."""
    _keep_index(PICKED, range(1, n - 1), 1 if n > 2 else 0)
    middle = n > 2
    # One row that wraps (content-wide buttons): fixed columns left empty buttons on narrow screens.
    row = st.container(horizontal=True, vertical_alignment="bottom")
    picked = row.selectbox("Layer to move or remove", range(1, n - 1) if middle else [0], key=PICKED,
                               format_func=lambda i: f"{role(i, n)}: {rows[i]['name']}"[:60], disabled=not middle,
                               help="The substrate and the ambient stay first and last.", width=260)
    row.button(":material/arrow_upward: Up", key="film_up", on_click=_on_structure, args=("up", max_layers),
                   disabled=not middle or picked <= 1, help="Move toward the substrate (up the table).")
    row.button(":material/arrow_downward: Down", key="film_down", on_click=_on_structure,
                   args=("down", max_layers), disabled=not middle or picked >= n - 2,
                   help="Move toward the ambient (down the table).")
    row.button(":material/delete: Remove", key="film_remove", on_click=_on_structure,
                   args=("remove", max_layers), disabled=not middle, help="Remove this layer (undoable).")
    row.button(":material/add: Add layer", key="film_add", on_click=_on_structure, args=("add", max_layers),
                   disabled=n >= max_layers,
                   help=f"Adds a 50 Å layer just below the ambient (at most {max_layers} layers).")
    what = undo_label()
    row.button(":material/undo: Undo", key="film_undo_button", on_click=undo, disabled=what is None,
                   help=f"Undo {what}." if what else "Nothing to undo yet.")
