"""The explorer page driven through Streamlit's AppTest (no browser)."""

import base64
import json

import numpy as np
import pytest
from conftest import ROOT
from layer_table import click, edit_cells, layer_table, table_values
from streamlit.testing.v1 import AppTest

APP = str(ROOT / "app.py")


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def figure(at, index=0):
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def values(array):
    """Plotly sends arrays either as lists or base64-packed ``{"dtype", "bdata"}``."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def curve_y(at):
    return values(figure(at, 0)["data"][0]["y"])


def test_page_renders_both_charts_with_units(app):
    charts = app.get("plotly_chart")
    assert len(charts) == 2
    r_fig, sld_fig = figure(app, 0), figure(app, 1)
    assert r_fig["layout"]["xaxis"]["title"]["text"] == "Q (Å⁻¹)"
    assert r_fig["layout"]["yaxis"]["type"] == "log"
    assert "10⁻⁶ Å⁻²" in sld_fig["layout"]["yaxis"]["title"]["text"]
    assert values(r_fig["data"][0]["x"]).size == 308


def test_editing_a_layer_changes_the_curve(app):
    before = curve_y(app)
    edit_cells(app, {3: {"thickness": 120.0}})
    assert app.session_state["film_rows"][3]["thickness"] == 120.0
    assert table_values(app)["thickness"][3] == 120.0
    assert not np.array_equal(curve_y(app), before)


def tuner(at, field):
    return at.number_input(key=f"film_tune_{field}")


def test_the_tuner_edits_one_layer_the_table_follows_and_undo_reverts(app):
    rows = [dict(r) for r in app.session_state["film_rows"]]
    table_key = layer_table(app).proto.id
    before = curve_y(app)
    assert app.selectbox(key="film_tuned").value == 1  # the first layer above the substrate
    assert tuner(app, "thickness").value == rows[1]["thickness"] and tuner(app, "thickness").step == 1.0
    tuner(app, "thickness").set_value(40.0).run()
    assert not app.exception, app.exception
    assert app.session_state["film_rows"][1]["thickness"] == 40.0
    assert table_values(app)["thickness"][1] == 40.0  # the table shows the tuned value ...
    assert layer_table(app).proto.id == table_key  # ... through the same table (not re-mounted)
    assert not np.array_equal(curve_y(app), before)
    click(app, "Undo")
    assert app.session_state["film_rows"] == rows and tuner(app, "thickness").value == rows[1]["thickness"]
    assert np.array_equal(curve_y(app), before)


def test_the_tuner_follows_the_table_and_leaves_unused_cells_of_the_ambient_empty(app):
    edit_cells(app, {1: {"sld": 5.5}})
    assert tuner(app, "sld").value == 5.5  # a table edit reaches the tuner
    n = len(app.session_state["film_rows"])
    app.selectbox(key="film_tuned").set_value(n - 1).run()
    assert tuner(app, "thickness").value is None and tuner(app, "thickness").disabled
    assert tuner(app, "roughness").value is None and tuner(app, "roughness").disabled
    assert not tuner(app, "sld").disabled
    assert tuner(app, "sld").max == 100 and tuner(app, "roughness").max == 1000  # the physical bounds


def test_a_cleared_or_out_of_range_cell_keeps_its_value_and_says_why(app):
    rows = [dict(r) for r in app.session_state["film_rows"]]
    before = curve_y(app)
    edit_cells(app, {2: {"thickness": -5.0, "sld": None}, 3: {"roughness": "abc"}, 0: {"thickness": 40.0},
                     99: {"sld": 1.0}, 1: {"position": "x"}})
    notes = " | ".join(w.value for w in app.warning)
    assert "thickness of layer 2 must be between 0 and 100000 Å, got -5: kept" in notes, notes
    assert "SLD of layer 2 was cleared: kept" in notes
    assert "roughness of layer 3 must be a number, got 'abc'" in notes
    assert "thickness of the substrate is not used (it is semi-infinite)" in notes
    assert "not in the table" in notes and "'position' of layer 1 cannot be edited" in notes
    assert app.session_state["film_rows"] == rows
    assert np.array_equal(curve_y(app), before)
    assert table_values(app)["thickness"][2] == rows[2]["thickness"]  # the table shows the kept value


def test_every_edit_can_be_undone_newest_first(app):
    rows = [dict(r) for r in app.session_state["film_rows"]]
    edit_cells(app, {3: {"thickness": 120.0}})
    edit_cells(app, {1: {"name": "oxide"}})
    click(app, "Add layer")
    assert len(app.session_state["film_rows"]) == len(rows) + 1
    for _ in range(3):
        click(app, "Undo")
    assert app.session_state["film_rows"] == rows
    assert any("Undone: thickness of layer 3 (120 Å)" in w.value for w in app.warning)
    assert next(b for b in app.button if "Undo" in b.label).disabled  # nothing left to undo


def test_bad_q_range_is_reported(app):
    app.number_input(key="qmin").set_value(0.5).run()
    assert any("Q min" in e.value for e in app.error)
    assert len(app.get("plotly_chart")) == 2


def test_add_remove_and_reorder_layers_keep_substrate_first_and_ambient_last(app):
    n = len(app.session_state["film_rows"])
    click(app, "Add layer")
    rows = app.session_state["film_rows"]
    assert len(rows) == n + 1 and rows[-1]["name"] == "air" and rows[0]["name"] == "substrate"
    first_layer = rows[1]["name"]
    app.selectbox(key="film_table_picked").set_value(1).run()
    click(app, "Down")
    assert app.session_state["film_rows"][2]["name"] == first_layer
    assert app.selectbox(key="film_table_picked").value == 2  # the moved layer stays picked
    click(app, "Remove")
    names = [r["name"] for r in app.session_state["film_rows"]]
    assert first_layer not in names and len(names) == n
    # the picker offers only the layers between substrate and ambient; the last one cannot go further down
    picker = app.selectbox(key="film_table_picked")
    assert picker.options[0].startswith("layer 1") and picker.options[-1].startswith(f"layer {n - 2}")
    picker.set_value(n - 2).run()
    assert next(b for b in app.button if "Down" in b.label).disabled


def test_substrate_and_ambient_thickness_are_empty_cells(app):
    table = table_values(app)
    assert np.isnan(table["thickness"][0]) and np.isnan(table["thickness"].iloc[-1])
    assert np.isnan(table["roughness"].iloc[-1]) and not np.isnan(table["thickness"][1])
    assert list(table["position"]) == ["substrate"] + [f"layer {i}" for i in range(1, len(table) - 1)] + ["ambient"]


def test_preset_load_and_undo(app):
    app.selectbox(key="explorer_preset").set_value("Bare Si / air (Fresnel)").run()
    next(b for b in app.button if b.label == "Load preset").click().run()
    assert len(app.session_state["film_rows"]) == 2
    next(b for b in app.button if "Undo" in b.label).click().run()
    assert len(app.session_state["film_rows"]) == 8


def test_plot_choices_log_q_critical_edge_and_graded_curve(app):
    app.radio(key="plot").set_value("RQ4").run()
    assert "Q⁴" in figure(app)["layout"]["yaxis"]["title"]["text"]
    app.radio(key="plot").set_value("RF").run()
    fig = figure(app)
    assert "R / R_F" in fig["layout"]["yaxis"]["title"]["text"]
    q, ratio = values(fig["data"][0]["x"]), values(fig["data"][0]["y"])
    # Far above the edge the film's own structure is left: of order 1, not the Q⁻⁴ decay of R itself.
    assert 0.01 < ratio[q > 0.1].min() and ratio[q > 0.1].max() < 10
    # The default film: Si (2.07) under air, so Q_c = 4√(π · 2.07e-6) = 0.0102 Å⁻¹.
    assert any("Q_c = **0.0102 Å⁻¹**" in c.value for c in app.caption)
    assert fig["layout"]["shapes"][0]["x0"] == pytest.approx(0.0102, abs=1e-4)
    app.toggle(key="log_q").set_value(True).run()
    assert figure(app)["layout"]["xaxis"]["type"] == "log"
    app.toggle(key="graded").set_value(True).run()
    assert len(figure(app)["data"]) == 2
    assert any("decades" in i.value for i in app.info)  # the default prior is very rough


def test_sidebar_states_optional_engines(app):
    text = " ".join(m.value for m in app.sidebar.markdown)
    for name in ("pyreflect", "Modal", "Hugging Face Hub", "Login"):
        assert name in text
    assert "single-user" in text


# --- physical bounds and the film-layer limit (nothing big is computed to refuse them) -----------------------------


def film_json(layers) -> bytes:
    return json.dumps({"layers": layers}).encode()


def upload(at, data: bytes, name="film.json"):
    at.file_uploader[0].set_value((name, data, "application/json")).run()
    assert not at.exception, at.exception
    return [e.value for e in at.error]


def test_widgets_carry_the_physical_bounds(app):
    columns = json.loads(layer_table(app).proto.columns)
    assert columns["thickness"]["type_config"]["max_value"] == 1e5
    assert columns["roughness"]["type_config"]["max_value"] == 1000
    assert columns["sld"]["type_config"]["max_value"] == 100 and columns["sld"]["type_config"]["min_value"] == -100
    assert app.number_input(key="qmax").max == 2.0 and app.number_input(key="nq").max == 20_000
    assert app.number_input(key="dq_percent").max == 50.0


def test_huge_thickness_in_an_uploaded_film_is_refused_with_a_message(app):
    rows = [dict(r) for r in app.session_state["film_rows"]]
    layers = [{"name": "Si", "sld": 2.07}, {"name": "thick", "sld": 4.0, "thickness": 3e7, "roughness": 5},
              {"name": "air", "sld": 0.0}]
    errors = upload(app, film_json(layers))
    assert any("3e+07" in e and "physical bound" in e and "unchanged" in e for e in errors), errors
    assert [r["name"] for r in app.session_state["film_rows"]] == [r["name"] for r in rows]
    assert len(app.get("plotly_chart")) == 2


def test_a_remembered_q_max_of_1000_is_refused_with_a_message():
    app = AppTest.from_file(APP, default_timeout=60)
    app.session_state["_keep_qmax"] = 1000.0  # the Q max shared between pages, from before the bounds
    app.run()
    assert not app.exception, app.exception
    assert any("1000" in w.value and "physical bounds" in w.value for w in app.warning)
    assert app.number_input(key="qmax").value == 2.0
    assert values(figure(app, 0)["data"][0]["x"]).max() <= 2.0


def test_too_many_layers_are_refused_by_the_film_layer_limit(app):
    layers = [{"name": f"l{i}", "sld": 1.0 + i % 3, "thickness": 10.0, "roughness": 1.0} for i in range(500)]
    errors = upload(app, film_json(layers))
    assert any("film layers 500 > 20" in e for e in errors), errors
    assert len(app.session_state["film_rows"]) == 8  # the default film is kept


def test_a_5000_digit_number_in_an_uploaded_film_is_a_clear_error(app):
    text = b'{"layers": [{"sld": ' + b"9" * 5000 + b'}, {"sld": 0}]}'
    errors = upload(app, text)
    assert any("not valid JSON" in e and "digits" in e for e in errors), errors


def test_a_thick_film_on_a_long_fine_grid_is_refused_before_it_is_computed(app):
    layers = [{"name": "Si", "sld": 2.07}, {"name": "thick", "sld": 4.0, "thickness": 9e4, "roughness": 5},
              {"name": "air", "sld": 0.0}]
    assert upload(app, film_json(layers)) == []  # a valid film
    before = curve_y(app)
    app.number_input(key="qmax").set_value(2.0)
    app.number_input(key="nq").set_value(20_000).run()
    errors = [e.value for e in app.error]
    assert any("resolution weights" in e for e in errors), errors
    assert np.array_equal(curve_y(app), before)  # the last good curve stays


def test_an_uploaded_films_name_is_kept_for_saving_and_undo_brings_the_old_one_back(app):
    long_name = "PS-b-PMMA on Si, annealed 24 h at 180 °C " * 4  # 164 characters: over the save field's 80
    layers = [{"name": "Si", "sld": 2.07}, {"name": "PS", "sld": 1.41, "thickness": 300, "roughness": 5},
              {"name": "air", "sld": 0.0}]
    before = app.session_state["film_name"]  # the default film's own name
    assert upload(app, json.dumps({"name": long_name, "layers": layers}).encode()) == []
    assert app.session_state["film_name"] == long_name != before
    assert app.text_input(key="save_film_name").value == long_name[:80]
    next(b for b in app.button if "Undo" in b.label).click().run()
    assert not app.exception and app.session_state["film_name"] == before
    assert app.text_input(key="save_film_name").value == before


# --- a measured curve over the film ----------------------------------------------------------------------------


def store_curve(name, q, r, dr, dq):
    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.formats.curves import csv_text
    from reflect_core.store import user_curves

    user_curves.save_curve(LOCAL_USER, name, csv_text(["Q", "R", "dR", "dQ"], [q, r, dr, dq]).encode())


def test_a_measured_curve_is_overlaid_with_its_chi2_and_verdict(app):
    from reflect_core.analysis.measured import film_at_data
    from reflect_core.formats.curves import Curve
    from reflect_core.physics.presets import DEFAULT_FILM

    assert any("upload one on the 'Models and data' page" in c.value for c in app.caption)  # none yet: a hint
    q = np.geomspace(0.009, 0.19, 150)
    dq = 0.03 * q
    r = film_at_data(DEFAULT_FILM, Curve(q=q, r=np.ones_like(q), dq=dq), dq=0.03)
    rng = np.random.default_rng(7)
    store_curve("same_film.txt", q, r * (1 + 0.05 * rng.standard_normal(q.size)), 0.05 * r, dq)
    store_curve("other_film.txt", q, r * np.exp(np.sin(q * 200) - 1), 0.05 * r, dq)
    app.run()
    app.selectbox(key="explorer_overlay").set_value("same_film.txt").run()
    assert not app.exception, app.exception
    fig = figure(app)
    assert fig["data"][0]["name"] == "data" and values(fig["data"][0]["x"]).size == 150  # drawn with error bars
    # The curve was made from this very film with 5 % errors: χ² ≈ 1 and the verdict says consistent.
    assert any("Consistent with the data" in s.value for s in app.success), [s.value for s in app.success]
    app.selectbox(key="explorer_overlay").set_value("other_film.txt").run()
    assert any("Does not explain the data" in w.value for w in app.warning)


def test_the_real_measurement_over_the_default_film(app, shared_data_path):
    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.store import user_curves

    user_curves.save_curve(LOCAL_USER, "REFL_212592.txt", shared_data_path.read_bytes())
    app.run()
    app.selectbox(key="explorer_overlay").set_value("REFL_212592.txt").run()
    assert not app.exception, app.exception
    # pyreflect's default prior is not this polymer film: the verdict must not call it consistent.
    assert not app.success or not any("Consistent" in s.value for s in app.success)
    assert any("reduced χ²" in c.value for c in app.caption)


def test_an_upload_error_goes_once_a_preset_is_loaded(app):
    layers = [{"name": "Si", "sld": 2.07}, {"name": "thick", "sld": 4.0, "thickness": 3e7, "roughness": 5},
              {"name": "air", "sld": 0.0}]
    assert upload(app, film_json(layers))  # refused, with its message
    next(b for b in app.button if b.label == "Load preset").click().run()
    assert not app.exception and not any("unchanged" in e.value for e in app.error)


def test_start_here_names_the_three_paths(app):
    intro = next(e for e in app.expander if "start here" in e.label)
    text = " ".join(m.value for m in intro.markdown)
    assert all(path in text for path in ("Explore a film", "Train a network", "Analyse a measurement"))
