"""The explorer page driven through Streamlit's AppTest (no browser)."""

import base64
import json

import numpy as np
import pytest
from conftest import ROOT
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


def thickness_input(at, row):
    uid = at.session_state["film_rows"][row]["uid"]
    return at.number_input(key=f"L{uid}_thickness")


def test_editing_a_layer_changes_the_curve(app):
    before = curve_y(app)
    thickness_input(app, 3).set_value(120.0).run()
    assert not app.exception
    assert app.session_state["film_rows"][3]["thickness"] == 120.0
    assert not np.array_equal(curve_y(app), before)


def test_bad_value_shows_error_and_keeps_last_curve(app):
    before = curve_y(app)
    thickness_input(app, 2).set_value(-5.0).run()
    errors = [e.value for e in app.error]
    assert any("thickness" in e and "layer 2" in e for e in errors), errors
    assert np.array_equal(curve_y(app), before)  # the last good curve stays
    assert any("last valid curve" in w.value for w in app.warning)


def test_bad_q_range_is_reported(app):
    app.number_input(key="qmin").set_value(0.5).run()
    assert any("Q min" in e.value for e in app.error)
    assert len(app.get("plotly_chart")) == 2


def test_add_remove_and_reorder_layers(app):
    n = len(app.session_state["film_rows"])
    next(b for b in app.button if "Add layer" in b.label).click().run()
    rows = app.session_state["film_rows"]
    assert len(rows) == n + 1 and rows[-1]["name"] == "air"
    first_layer = rows[1]["name"]
    app.button(key=f"down_{rows[1]['uid']}").click().run()
    assert app.session_state["film_rows"][2]["name"] == first_layer
    app.button(key=f"del_{app.session_state['film_rows'][2]['uid']}").click().run()
    names = [r["name"] for r in app.session_state["film_rows"]]
    assert first_layer not in names and len(names) == n


def test_substrate_and_ambient_thickness_disabled(app):
    assert thickness_input(app, 0).disabled
    assert thickness_input(app, -1).disabled
    assert not thickness_input(app, 1).disabled


def test_preset_load_and_undo(app):
    app.selectbox(key="explorer_preset").set_value("Bare Si / air (Fresnel)").run()
    next(b for b in app.button if b.label == "Load preset").click().run()
    assert len(app.session_state["film_rows"]) == 2
    next(b for b in app.button if "Undo" in b.label).click().run()
    assert len(app.session_state["film_rows"]) == 8


def test_rq4_toggle_and_graded_curve(app):
    app.toggle(key="rq4").set_value(True).run()
    assert "Q⁴" in figure(app)["layout"]["yaxis"]["title"]["text"]
    app.toggle(key="graded").set_value(True).run()
    assert len(figure(app)["data"]) == 2
    assert any("decades" in i.value for i in app.info)  # the default prior is very rough


def test_sidebar_states_optional_engines(app):
    text = " ".join(m.value for m in app.sidebar.markdown)
    for name in ("pyreflect", "Modal", "Hugging Face Hub", "Login"):
        assert name in text
    assert "single-user" in text
