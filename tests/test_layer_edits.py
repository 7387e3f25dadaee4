"""The layer table's rules (ui.layer_edits): refused values keep the old one with a reason, and the
substrate stays first and the ambient last whatever is moved, removed or added."""

import math

import pytest

from ui.layer_edits import add, apply_cell_edits, move, remove, table_rows

ROWS = [{"name": "Si", "sld": 2.07, "isld": 0.0, "thickness": 0.0, "roughness": 3.0},
        {"name": "SiO2", "sld": 3.47, "isld": 0.0, "thickness": 15.0, "roughness": 2.0},
        {"name": "PS", "sld": 1.41, "isld": 0.0, "thickness": 300.0, "roughness": 5.0},
        {"name": "air", "sld": 0.0, "isld": 0.0, "thickness": 0.0, "roughness": 0.0}]


def test_a_valid_edit_changes_only_its_cell_and_names_it():
    edit = apply_cell_edits(ROWS, {"2": {"thickness": 250.5}})
    assert edit.rows[2]["thickness"] == 250.5 and edit.changed == "thickness of layer 2 (250.5 Å)"
    assert edit.notes == () and ROWS[2]["thickness"] == 300.0  # the argument is not changed
    assert [r for i, r in enumerate(edit.rows) if i != 2] == [r for i, r in enumerate(ROWS) if i != 2]


def test_re_sent_edits_equal_to_the_rows_are_no_change():
    # The browser sends all its edits again with each new one: those already taken change nothing.
    assert apply_cell_edits(ROWS, {"1": {"sld": 3.47}, "2": {"name": "PS"}}).changed == ""


@pytest.mark.parametrize(("cells", "note"), [
    ({"sld": None}, "SLD of layer 1 was cleared: kept 3.47 × 10⁻⁶ Å⁻²"),
    ({"sld": float("nan")}, "was cleared"),
    ({"sld": "  "}, "was cleared"),
    ({"roughness": "abc"}, "roughness of layer 1 must be a number, got 'abc': kept 2 Å"),
    ({"roughness": True}, "must be a number"),
    ({"thickness": 1e9}, "thickness of layer 1 must be between 0 and 100000 Å, got 1e+09: kept 15 Å"),
    ({"isld": -0.1}, "iSLD of layer 1 must be between 0 and 100"),
    ({"sld": -101}, "between -100 and 100"),
    ({"sld": float("inf")}, "must be a number"),
    ({"name": ""}, "name of layer 1 cannot be empty: kept 'SiO2'"),
    ({"name": "x" * 81}, "81 characters (at most 80)"),
    ({"colour": "red"}, "column 'colour' of layer 1 cannot be edited"),
])
def test_a_refused_value_keeps_the_old_one_and_says_why(cells, note):
    edit = apply_cell_edits(ROWS, {"1": cells})
    assert edit.rows == ROWS and edit.changed == ""
    assert len(edit.notes) == 1 and note in edit.notes[0], edit.notes


def test_cells_the_physics_ignores_are_empty_and_refuse_values():
    shown = table_rows(ROWS)
    assert shown[0]["thickness"] is None and shown[-1]["thickness"] is None and shown[-1]["roughness"] is None
    assert shown[0]["roughness"] == 3.0 and [r["position"] for r in shown] == ["substrate", "layer 1", "layer 2",
                                                                             "ambient"]
    edit = apply_cell_edits(ROWS, {"0": {"thickness": 10.0}, "3": {"roughness": 4.0}})
    assert edit.rows == ROWS
    assert "thickness of the substrate is not used (it is semi-infinite)" in edit.notes[0]
    assert "roughness of the ambient is not used" in edit.notes[1]
    assert apply_cell_edits(ROWS, {"0": {"thickness": None}}).notes == ()  # clearing an empty cell: nothing


def test_hostile_edit_payloads_are_refused_without_a_crash():
    for payload in (None, [], "x", {"-1": {"sld": 1}}, {"4": {"sld": 1}}, {"a": {"sld": 1}}, {"1": ["sld"]},
                    {"1" * 5000: {"sld": 1}}):
        edit = apply_cell_edits(ROWS, payload)
        assert edit.rows == ROWS and edit.changed == ""
        assert all(len(n) < 200 for n in edit.notes)


def test_several_cells_in_one_edit_are_one_undo_step():
    edit = apply_cell_edits(ROWS, {"1": {"sld": 3.0, "thickness": 20.0}, "2": {"name": "dPS"}})
    assert edit.changed == "3 cells" and edit.rows[2]["name"] == "dPS"


def test_moves_keep_the_substrate_first_and_the_ambient_last():
    rows = add(ROWS, max_layers=10).rows  # Si, SiO2, PS, new, air
    assert [r["name"] for r in rows] == ["Si", "SiO2", "PS", "layer 3", "air"]
    down = move(rows, 1, +1)
    assert [r["name"] for r in down.rows] == ["Si", "PS", "SiO2", "layer 3", "air"]
    assert down.changed == "moving 'SiO2' toward the ambient"
    for index, offset in ((1, -1), (3, +1), (0, +1), (4, -1)):
        refused = move(rows, index, offset)
        assert refused.rows == rows and refused.changed == "" and refused.notes


def test_the_substrate_and_ambient_cannot_be_removed_and_the_limit_holds():
    for index in (0, 3, 7, -1):
        refused = remove(ROWS, index)
        assert refused.rows == ROWS and "cannot be removed" in refused.notes[0]
    assert [r["name"] for r in remove(ROWS, 1).rows] == ["Si", "PS", "air"]
    full = add(ROWS, max_layers=4)
    assert full.rows == ROWS and "At most 4 layers" in full.notes[0]


def test_shown_values_are_floats_for_the_table():
    assert all(isinstance(v, float) and math.isfinite(v) for v in (table_rows(ROWS)[1][f] for f in
                                                                    ("sld", "isld", "thickness", "roughness")))
