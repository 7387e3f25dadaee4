"""Every history record renders in isolation: one with a damaged field (an imported
``summary.bytes = "lots"``, a summary that is not an object, a time that is not a time) shows as
a line that says what is wrong, can be selected and deleted, and the rest of the page works."""

import json

import pytest

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.store import history


@pytest.fixture
def app(history_page):
    return history_page


def damage(record_id: str, **fields) -> None:
    """Change a stored record behind the library's back (as an old import or a hand edit would)."""
    path = history.history_path()
    data = json.loads(path.read_text())
    for doc in data["records"].values():
        if doc["id"] == record_id:
            doc.update(fields)
    path.write_text(json.dumps(data))


def good_film() -> dict:
    return history.add(LOCAL_USER, "film", "good film", {"film": DEFAULT_FILM.to_dict()}, {"bytes": 2_000_000})


def table(at):
    return at.dataframe[0].value.set_index("name")


def test_a_summary_bytes_of_lots_is_an_error_row_that_can_be_deleted(app):
    good = good_film()
    bad = history.add(LOCAL_USER, "import", "imported", {}, {"bytes": "lots", "rmse": 0.5})
    app.run()
    assert not app.exception, app.exception
    rows = table(app)
    assert rows.loc["good film", "size"] == 2.0
    assert "summary.bytes is not a number ('lots')" in rows.loc["imported", "state"]
    assert rows.loc["imported", "rmse"] == 0.5  # what can be read still is

    app.multiselect(key="history_selected").set_value([bad["id"]]).run()
    assert not app.exception, app.exception
    assert any("damaged" in e.value and "lots" in e.value for e in app.error)
    app.checkbox(key=f"confirm_{bad['id']}").check().run()
    next(b for b in app.button if b.label == "Delete for good").click().run()
    assert not app.exception, app.exception
    assert [r["id"] for r in history.list_records(LOCAL_USER)] == [good["id"]]


@pytest.mark.parametrize("fields, problem", [
    ({"summary": "lots"}, "summary is str"),
    ({"summary": {"agreement": [1, 2]}}, "summary.agreement"),
    ({"summary": {"state": 7}}, "summary.state"),
    ({"created": "yesterday"}, "created is 'yesterday'"),
    ({"created": 1e300}, "created is 1e+300"),
    ({"name": 12}, "name is 12"),
    ({"params": [1]}, "params is [1]"),
    ({"files": 5}, "files is 5"),
])
def test_any_damaged_field_leaves_the_page_working_and_the_record_deletable(app, fields, problem):
    good = good_film()
    bad = history.add(LOCAL_USER, "film", "bad film", {"film": DEFAULT_FILM.to_dict()})
    damage(bad["id"], **fields)
    app.run()
    assert not app.exception, app.exception
    states = " ".join(str(s) for s in app.dataframe[0].value["state"])
    assert problem in states, states
    app.multiselect(key="history_selected").set_value([good["id"]]).run()  # the others still open
    assert not app.exception and any(h.value == "good film" for h in app.subheader)
    app.multiselect(key="history_selected").set_value([bad["id"]]).run()
    assert not app.exception, app.exception
    app.checkbox(key=f"confirm_{bad['id']}").check().run()
    next(b for b in app.button if b.label == "Delete for good").click().run()
    assert not app.exception, app.exception
    assert [r["id"] for r in history.list_records(LOCAL_USER)] == [good["id"]]


def test_the_library_reads_a_damaged_record_as_typed_fields_and_its_problems():
    record = history.readable({"id": "x", "owner": "alice", "name": "n", "kind": "import", "created": 1.0,
                               "updated": 1.0, "params": {}, "summary": {"bytes": "lots", "total_s": 3.0},
                               "files": None, "run_id": None})
    assert record["summary"] == {"total_s": 3.0}
    assert record["problems"] == ["summary.bytes is not a number ('lots')"]
    assert "problems" not in history.readable({**record, "summary": {"bytes": 10}})
