"""The history page through AppTest: select, rename, delete, open, compare, export; and
bundles that import back as the importer's own records."""

import io
import json
import zipfile

import numpy as np
import pytest
from test_generate import SIMPLE

from reflect_core.accounts.access import LOCAL_USER, AccessError, User
from reflect_core.base.job_protocol import PrintReporter
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import generate
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.model_store import load_model
from reflect_core.ml.pipeline import train_on_arrays
from reflect_core.ml.spec import TrainSpec
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.store import history
from reflect_core.store.bundles import build_bundle, bundle_parts
from reflect_core.store.importer import import_bundle, import_json
from reflect_core.store.records import record_dir
from reflect_core.uploads import UploadError
from reflect_core.viz.report import shared_test_curves


class Quiet(PrintReporter):
    def __init__(self):
        super().__init__(stream=io.StringIO())


def trained_record(name: str, epochs: int) -> dict:
    """A completed training record with a real (tiny) model, as a finished job leaves it."""
    spec = TrainSpec.parse({"dataset": {**SIMPLE, "n": 200, "seed": 4}, "model": {"layers": 1, "channels": 4,
                                                                               "hidden": 16},
                          "training": {"epochs": epochs, "batch_size": 32}})
    folder = f"runs/{name}"
    data = generate(spec.dataset, data_dir() / folder / "data")
    train_on_arrays(np.load(data / "nr_train.npy"), np.load(data / "sld_train.npy"), spec,
                    data_dir() / folder / "model", Quiet())
    summary = ModelMeta.read(data_dir() / folder / "model").summary()
    return history.add(LOCAL_USER, "training", name, spec.to_dict(), {"state": "completed", **summary}, files=folder)


@pytest.fixture
def app(history_page):
    return history_page


def select(at, *records):
    at.multiselect(key="history_selected").set_value([r["id"] for r in records]).run()
    assert not at.exception, at.exception


def test_rename_delete_and_open_a_film(app):
    film = history.add(LOCAL_USER, "film", "thin gold", {"film": DEFAULT_FILM.to_dict(), "qmax": 0.25})
    app.run()
    select(app, film)
    app.text_input[1].set_value("  gold on silicon  ")
    next(b for b in app.button if b.label == "Rename").click().run()
    assert history.get(LOCAL_USER, film["id"])["name"] == "gold on silicon"
    select(app, film)
    next(b for b in app.button if b.label == "Open").click().run()
    assert [r["name"] for r in app.session_state["film_rows"]] == [l.name for l in DEFAULT_FILM.layers]
    app.switch_page("app_pages/history.py").run()
    select(app, film)
    app.checkbox(key=f"confirm_{film['id']}").check().run()
    next(b for b in app.button if b.label == "Delete for good").click().run()
    assert history.list_records(LOCAL_USER) == []


def test_compare_two_runs_on_a_shared_test_set(app):
    a, b = trained_record("short", 1), trained_record("longer", 3)
    app.run()
    select(app, a, b)
    assert any("Comparing 2 records" in h.value for h in app.subheader)
    table = app.dataframe[-1].value
    assert list(table["run"]) == ["short", "longer"] or list(table["run"]) == ["longer", "short"]
    assert len(app.get("plotly_chart")) == 2  # overlaid losses and profiles of one shared test curve


def test_export_bundle_and_import_it_as_another_user(app, tmp_path):
    record = trained_record("to share", 2)
    app.run()
    select(app, record)
    assert any("Download bundle" in b.label for b in app.get("download_button"))
    parts = bundle_parts(record, record_dir(record))
    assert {"record.json", "figures.html", "model", "data"} <= set(parts)
    bundle = build_bundle(record, record_dir(record), {"record.json", "model"}, None)
    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert "record.json" in names and "model/model.pt" in names and not any(n.startswith("data/") for n in names)
    bob = User("bob")
    imported = import_bundle(bob, "to_share.zip", bundle, 50_000_000)
    assert imported["owner"] == "bob" and imported["kind"] == "training"
    load_model(record_dir(imported) / "model")
    with pytest.raises(AccessError):
        history.get(User("carol"), imported["id"])
    # with its training arrays, an imported run compares on its own copy of them: model.json keeps no path
    with_data = import_bundle(bob, "to_share.zip", build_bundle(record, record_dir(record),
                                                                {"record.json", "model", "data"}, None), 50_000_000)
    assert with_data["files"].startswith("history/imports/bob/")
    meta = ModelMeta.read(record_dir(with_data) / "model")
    assert meta.data_folder is None and meta.test_index == ModelMeta.read(record_dir(record) / "model").test_index
    shared = shared_test_curves([with_data])
    np.testing.assert_array_equal(shared["nr"], np.load(record_dir(record) / "data" / "nr_train.npy")[shared["index"]])


def test_import_pyreflect_interface_export_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))  # never the working directory's ./data
    export = {"params": {"layers": json.loads(DEFAULT_FILM.to_json())["layers"], "generator": {"numCurves": 1000}},
              "result": {"metrics": {"mse": 0.01}}}
    record = import_json(User("alice"), "interface_export.json", json.dumps(export).encode())
    assert record["kind"] == "import" and record["params"]["film"]["layers"][0]["name"] == "substrate"
    for name, data, message in [("x.json", b"{", "not valid JSON"), ("x.json", b"[]", "JSON object"),
                                ("x.zip", b"PK\x03\x04garbage", "x.zip")]:
        with pytest.raises(UploadError, match=message):
            (import_bundle(User("alice"), name, data, 10_000) if name.endswith(".zip")
             else import_json(User("alice"), name, data))


def test_a_search_without_a_match_says_so_rather_than_nothing_here(app):
    history.add(LOCAL_USER, "film", "thin gold", {"film": DEFAULT_FILM.to_dict()})
    app.run()
    app.text_input[0].set_value("silver").run()
    assert not app.exception, app.exception
    messages = [i.value for i in app.info]
    assert any("No record matches the name 'silver'" in m for m in messages), messages
    assert not any("Nothing here yet" in m for m in messages)
    app.text_input[0].set_value("").run()
    assert not any("No record matches" in i.value for i in app.info)


def test_a_selected_training_record_shows_its_results_and_the_comparison_has_units(app):
    a, b = trained_record("first", 1), trained_record("second", 2)
    app.run()
    select(app, a)
    assert any("Results on the held-out test set" in h.value for h in app.subheader)
    assert any(e.label == "Results" for e in app.expander)
    select(app, a, b)
    columns = set(app.dataframe[-1].value.columns)
    assert {"test RMSE (10⁻⁶ Å⁻²)", "R²", "baseline RMSE (10⁻⁶ Å⁻²)", "verdict", "epochs run"} <= columns


def test_an_import_of_a_bundle_made_here_gets_a_name_of_its_own(app):
    record = trained_record("shared run", 1)
    bundle = build_bundle(record, record_dir(record), {"record.json", "model"}, None)
    first = import_bundle(LOCAL_USER, "shared.zip", bundle, 50_000_000)
    second = import_bundle(LOCAL_USER, "shared.zip", bundle, 50_000_000)
    assert (first["name"], second["name"]) == ("shared run (2)", "shared run (3)")
    long = history.add(LOCAL_USER, "film", "x" * 80, {"film": DEFAULT_FILM.to_dict()})
    assert history.unique_name(LOCAL_USER, long["name"]) == "x" * 76 + " (2)"  # still within 80 characters


def test_opening_an_imported_training_record_does_not_show_another_runs_results(app):
    from reflect_core import jobs
    from ui.job_monitor import SELECTED

    record = trained_record("original", 1)
    imported = import_bundle(LOCAL_USER, "o.zip", build_bundle(record, record_dir(record), {"record.json", "model"},
                                                                None), 50_000_000)
    app.session_state[SELECTED] = "someone-elses-run"
    app.run()
    select(app, imported)
    next(b for b in app.button if b.label == "Open").click().run()
    assert not app.exception, app.exception
    assert SELECTED not in app.session_state or app.session_state[SELECTED] != "someone-elses-run"
    assert any("It was imported" in t.value for t in app.toast)
    assert jobs.list_runs() == []


def test_a_rename_in_history_renames_the_run_on_the_train_page(app):
    from reflect_core import jobs
    from reflect_core.store import records

    run_id, _ = records.submit_training(LOCAL_USER, TrainSpec.parse(
        {"dataset": {**SIMPLE, "n": 100}, "model": {"layers": 1, "channels": 4, "hidden": 16},
         "training": {"epochs": 1}}), "before")
    record = history.find_by_run(LOCAL_USER, run_id)
    records.rename_record(LOCAL_USER, record["id"], "after")
    assert history.get(LOCAL_USER, record["id"])["name"] == "after" and jobs.get(run_id).name == "after"


def test_a_training_bundles_figures_hold_its_results_not_only_its_losses(app):
    from reflect_core.viz.report import figures_for, standalone_html

    record = trained_record("with results", 2)
    figures = figures_for(record, record_dir(record))
    assert set(figures) == {"loss_curves", "parity_test_set", "test_curve_1_profile", "test_curve_1_reflectivity"}
    html = standalone_html(figures, record["name"])
    assert html.count("plotly.js v") <= 2 and html.count("<h2>") == 4  # one embedded plotly.js for four figures
