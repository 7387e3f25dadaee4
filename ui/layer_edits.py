"""The layer table's edits applied to the film rows: pure functions (no Streamlit), so every rule is
testable without a page.

Rows are dicts (``name`` and the fields of ``physics.film.LAYER_FIELDS``), substrate first and
ambient last; every function returns new rows and never changes its argument. A refused value
keeps the layer's previous one and the returned note says why: a cleared cell, text in a number
cell, a value past its physical bound, a cell the physics ignores (the semi-infinite media's
thickness, the ambient's roughness). Structure edits keep the substrate first and the ambient last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reflect_core.physics.film import FIELD_UNITS, LAYER_FIELDS, MAX_SLD, MAXIMA

MINIMA = {"sld": -MAX_SLD, "isld": 0.0, "thickness": 0.0, "roughness": 0.0}
MAX_NAME = 80
NAME_FIELDS = ("name",) + LAYER_FIELDS
WORDS = {"name": "name", "sld": "SLD", "isld": "iSLD", "thickness": "thickness", "roughness": "roughness"}


@dataclass(frozen=True)
class Edit:
    """The rows after an edit, what changed (for the undo button; empty: nothing did) and the notes
    on refused values."""

    rows: list[dict]
    changed: str = ""
    notes: tuple[str, ...] = ()


def role(index: int, n_rows: int) -> str:
    return "substrate" if index == 0 else "ambient" if index == n_rows - 1 else f"layer {index}"


def place(index: int, n_rows: int) -> str:
    """The layer as a sentence names it: "the substrate", "layer 2", "the ambient"."""
    name = role(index, n_rows)
    return name if name.startswith("layer") else f"the {name}"


def unused(field: str, index: int, n_rows: int) -> bool:
    """Cells the physics ignores: the semi-infinite media have no thickness, the ambient no upper interface."""
    if field == "thickness":
        return index in (0, n_rows - 1)
    return field == "roughness" and index == n_rows - 1


def table_rows(rows: list[dict]) -> list[dict]:
    """What the table shows: each layer's position, name and values; None (an empty cell) where unused."""
    n = len(rows)
    return [{"position": role(i, n), "name": row["name"],
             **{f: None if unused(f, i, n) else float(row[f]) for f in LAYER_FIELDS}} for i, row in enumerate(rows)]


def _shown(field: str, value: float) -> str:
    unit = FIELD_UNITS[field]
    return f"{value:g} × {unit}" if unit.startswith("10") else f"{value:g} {unit}"


def _blank(value) -> bool:
    """A cleared cell: the editor sends null (NaN once through pandas), a text cell an empty string."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value))


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _checked(field: str, value, where: str, previous) -> tuple[object, str | None]:
    """The value to store and a note when it was refused (the previous value is kept)."""
    if field == "name":
        text = "" if value is None else str(value).strip()
        if not text:
            return previous, f"The {where} cannot be empty: kept '{previous}'."
        if len(text) > MAX_NAME:
            return previous, f"The {where} is {len(text)} characters (at most {MAX_NAME}): kept '{previous}'."
        return text, None
    kept = f"kept {_shown(field, previous)}"
    if _blank(value):
        return previous, f"The {where} was cleared: {kept}."
    number = _number(value)
    if number is None:
        return previous, f"The {where} must be a number, got {str(value)[:40]!r}: {kept}."
    low, high = MINIMA[field], MAXIMA[field]
    if not low <= number <= high:
        return previous, (f"The {where} must be between {low:g} and {high:g} {FIELD_UNITS[field]}, "
                          f"got {number:g}: {kept}.")
    return number, None


def apply_cell_edits(rows: list[dict], edited_rows) -> Edit:
    """Apply the table's ``edited_rows`` ({row position: {column: value}}, as Streamlit's data editor
    reports them); cells equal to the row's value are no change."""
    new = [dict(row) for row in rows]
    n = len(new)
    notes: list[str] = []
    changed: list[str] = []
    for key, cells in (edited_rows or {}).items() if isinstance(edited_rows, dict) else ():
        try:
            index = int(key)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < n or not isinstance(cells, dict):
            notes.append(f"An edit of a row that is not in the table ({str(key)[:20]!r}) was ignored.")
            continue
        for field, value in cells.items():
            if field not in NAME_FIELDS:
                notes.append(f"The column {str(field)[:40]!r} of {place(index, n)} cannot be edited.")
                continue
            where = f"{WORDS[field]} of {place(index, n)}"
            if unused(field, index, n):
                if not _blank(value):
                    semi = "semi-infinite" if field == "thickness" else "the top medium, with no interface above it"
                    notes.append(f"The {where} is not used (it is {semi}); the value was not kept.")
                continue
            value, note = _checked(field, value, where, new[index][field])
            if note:
                notes.append(note)
            elif value != new[index][field]:
                new[index][field] = value
                changed.append(where if field == "name" else f"{where} ({_shown(field, value)})")
    return Edit(new, _summary(changed), tuple(notes))


def _summary(changed: list[str]) -> str:
    if len(changed) <= 1:
        return changed[0] if changed else ""
    return f"{len(changed)} cells"


def move(rows: list[dict], index: int, offset: int) -> Edit:
    """Move a layer one place toward the substrate (offset −1) or the ambient (+1)."""
    n = len(rows)
    target = index + offset
    if index in (0, n - 1):
        return Edit(list(rows), notes=(f"The {role(index, n)} stays where it is: the table always starts with "
                                       "the substrate and ends with the ambient.",))
    if not 0 < target < n - 1:
        side = "substrate" if target == 0 else "ambient"
        return Edit(list(rows), notes=(f"The {role(index, n)} is already next to the {side}.",))
    new = [dict(row) for row in rows]
    new[index], new[target] = new[target], new[index]
    toward = "substrate" if offset < 0 else "ambient"
    return Edit(new, f"moving '{rows[index]['name']}' toward the {toward}")


def remove(rows: list[dict], index: int) -> Edit:
    n = len(rows)
    if not 0 < index < n - 1:
        what = role(index, n) if 0 <= index < n else "row"
        return Edit(list(rows), notes=(f"The {what} cannot be removed (edit its SLD instead): a film always has "
                                       "a substrate and an ambient.",))
    return Edit([dict(row) for i, row in enumerate(rows) if i != index], f"removing '{rows[index]['name']}'")


def add(rows: list[dict], max_layers: int) -> Edit:
    """A new 50 Å layer just below the ambient."""
    if len(rows) >= max_layers:
        return Edit(list(rows), notes=(f"At most {max_layers} layers (substrate and ambient included).",))
    new = [dict(row) for row in rows]
    new.insert(max(len(new) - 1, 1), {"name": f"layer {len(rows) - 1}", "sld": 2.0, "isld": 0.0,
                                      "thickness": 50.0, "roughness": 5.0})
    return Edit(new, "adding a layer")
