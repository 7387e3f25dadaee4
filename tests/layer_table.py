"""Driving the explorer's layer table (a Streamlit data editor) from AppTest.

AppTest has no setter for data editors, so an edit is sent as the browser sends it: the widget's
JSON value (``edited_rows`` by row position and column name) with the other widgets' states.
"""

import json


def layer_table(at):
    return next(e for e in at.main if type(e).__name__ == "Dataframe" and "film_table" in e.proto.id)


def table_values(at):
    """The table as the page drew it (a pandas DataFrame: position, name and the layer fields)."""
    return layer_table(at).value


def edit_cells(at, edited_rows: dict):
    """Type values into the table (``{row: {column: value}}``) and rerun, as one browser edit."""
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = layer_table(at).proto.id
    state.string_value = json.dumps({"edited_rows": {str(k): v for k, v in edited_rows.items()},
                                     "added_rows": [], "deleted_rows": []})
    at._run(states)
    assert not at.exception, at.exception
    return at


def click(at, label_part: str):
    next(b for b in at.button if label_part in b.label).click().run()
    assert not at.exception, at.exception
    return at
