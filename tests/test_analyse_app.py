"""The Analyse page through AppTest: guidance with no data; a synthetic curve fitted from a film
typed as text, in a background runner, polled to completion (fragment timers do not fire in
AppTest: the test reruns the page), its χ² and parameter table; Save to history, and the saved fit
shown by the History page."""

import time

import numpy as np
import pytest
import streamlit as st
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.analysis import fit_runs
from reflect_core.formats.curves import csv_text
from reflect_core.formats.film_text import parse_film_text
from reflect_core.physics.simulate import film_reflectivity
from reflect_core.store import history, user_curves

APP = str(ROOT / "app.py")
TRUTH = "Si rough 3 / PMMA 100 rough 3 / air"
START = "Si rough 3 / PMMA 92 rough 3 / air"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/analyse.py").run()
    assert not at.exception, at.exception
    yield at
    for run in fit_runs.list_fits(LOCAL_USER):  # never leave a runner behind
        if run.state == "running":
            fit_runs.stop(LOCAL_USER, run.run_id)


def keep_synthetic_curve() -> str:
    """A measured-curve upload of noiseless synthetic data (5 % dR, 3 % dQ/Q FWHM), kept as the
    Models page keeps one."""
    q = np.geomspace(0.01, 0.2, 80)
    r = film_reflectivity(parse_film_text(TRUTH).film, q, dq_abs=0.03 * q)
    data = csv_text(["Q", "R", "dR", "dQ"], [q, r, 0.05 * r, 0.03 * q]).encode()
    return user_curves.save_curve(LOCAL_USER, "synthetic.txt", data)


def text(at) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.info, *at.caption, *at.success, *at.error, *at.warning])


def test_without_data_the_page_says_what_to_upload(app):
    assert any("No measured curves yet" in i.value and "dR" in i.value for i in app.info)
    assert "No fits yet" in text(app)
    assert not any(b.label == "Fit" for b in app.button)


def test_a_fit_from_a_film_text_runs_to_completion_and_is_saved_to_history(app):
    name = keep_synthetic_curve()
    app.run()
    assert app.multiselect(key="fit_curves").value == [name]
    app.radio(key="fit_start_kind").set_value("text").run()
    app.text_input(key="fit_start_text").set_value(START).run()
    app.button(key="fit_start_apply").click().run()
    assert not app.exception, app.exception
    assert "from film text" in text(app)
    app.radio(key="fit_search").set_value("local").run()
    request = app.session_state["fit_request"]
    assert {"i": 1, "par": "thickness", "bounds": [46.0, 138.0]} in request["config"]["bounds"]
    app.text_input[-1].set_value("PMMA on Si")  # the fit's name, in the form
    next(b for b in app.button if b.label == "Fit").click().run()
    assert not app.exception, app.exception
    run_id = app.session_state["fit_selected_run"]
    deadline = time.time() + 40
    while fit_runs.get(LOCAL_USER, run_id).state == "running" and time.time() < deadline:
        time.sleep(0.5)
        app.run()  # the poll a fragment timer would make
    app.run()
    run = fit_runs.get(LOCAL_USER, run_id)
    assert run.state == "completed", (run.error, run.progress.log_tail[-5:])
    assert not app.exception, app.exception
    assert any(s.value.startswith("**completed") for s in app.success)
    statement = next(m.value for m in app.markdown if m.value.startswith("χ²_red"))
    assert "N = 80 points" in statement and "free parameters" in statement and "search: least squares" in statement
    table = next(d.value for d in app.dataframe if "± (1σ)" in d.value.columns)
    thickness = table[table["parameter"].str.contains("thickness")].iloc[0]
    # Noiseless data and a start 8 % off: least squares finds the true 100 Å; 1 Å is well inside
    # what 80 points with 5 % error bars resolve.
    assert thickness["value"] == pytest.approx(100.0, abs=1.0) and thickness["± (1σ)"] > 0
    assert len(app.get("plotly_chart")) >= 3  # data and fit, residuals, SLD profile
    assert {"Results bundle (.zip)", "fit.json", "Data and fit (.ort)"} <= {
        b.label for b in app.get("download_button")}

    next(b for b in app.button if b.label == "Save to history").click().run()
    assert any("Saved 'PMMA on Si'" in s.value for s in app.success), text(app)
    [record] = history.list_records(LOCAL_USER, kind="fit")
    app.switch_page("app_pages/history.py").run()
    assert "fit" in list(app.dataframe[0].value["kind"])
    app.multiselect(key="history_selected").set_value([record["id"]]).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert any(m.value.startswith("χ²_red") for m in app.markdown)
    assert any("± (1σ)" in d.value.columns for d in app.dataframe)


def test_a_mixed_layer_enters_the_configuration_without_bounds_of_its_own():
    """The page's mixes table → the fit configuration: the layer's SLD starts at φ·A + (1−φ)·B and only
    φ varies for it (its own SLD bound is dropped, as FitConfig requires)."""
    from reflect_core.analysis.fit import FitConfig
    from reflect_core.formats.films import load_film
    from ui.fit_setup import fit_config

    film = load_film(ROOT / "examples" / "film_default.json")
    bounds = [{"i": 2, "par": "sld", "bounds": [1.0, 5.0]}, {"i": 2, "par": "thickness", "bounds": [40.0, 70.0]}]
    mixes = [{"i": 2, "a": 6.4, "b": 1.4, "phi": {"value": 0.3, "bounds": [0.0, 1.0]}}]
    config = fit_config(film, bounds, [], {"value": 1.0, "bounds": None}, {"value": 1e-7, "bounds": None}, None,
                        0.03, mixes)
    parsed = FitConfig.parse(config, 1)
    assert parsed.film.layers[2].sld == pytest.approx(0.3 * 6.4 + 0.7 * 1.4)
    assert [(b.i, b.par) for b in parsed.bounds] == [(2, "thickness")]
    assert parsed.mixes[0].phi.varies
    solvent = [{"i": 2, "a": 1.0, "b": "ambient", "phi": {"value": 0.8, "bounds": [0.5, 1.0]}}]
    config = fit_config(film, bounds, [], {"value": 1.0, "bounds": None}, {"value": 1e-7, "bounds": None}, None,
                        0.03, solvent)  # the film's ambient is air (0): the layer starts at 0.8
    assert FitConfig.parse(config, 1).film.layers[2].sld == pytest.approx(0.8)


def test_a_start_from_the_built_in_model_reads_its_prior_or_slabs(app):
    """The built-in network's prediction as the start: in its prior's terms (the prior's 8 layers), or cut
    into as many slabs as the user asks (substrate + 2 + ambient); the fit request follows the choice."""
    from reflect_core.physics.presets import DEFAULT_FILM

    q = np.geomspace(0.0081, 0.1975, 200)
    r = film_reflectivity(DEFAULT_FILM, q, dq_abs=0.03 * q)
    user_curves.save_curve(LOCAL_USER, "prior.txt", csv_text(["Q", "R", "dR"], [q, r, 0.05 * r]).encode())
    app.run()
    app.radio(key="fit_start_kind").set_value("model").run()
    assert not app.exception, app.exception
    assert "the model's prior (18 parameters) fitted to the predicted profile" in text(app)
    assert len(app.session_state["fit_request"]["config"]["film"]["layers"]) == len(DEFAULT_FILM.layers)
    app.selectbox(key="fit_start_read_as").set_value("2").run()
    assert not app.exception, app.exception
    assert "cut into slabs" in text(app)
    assert len(app.session_state["fit_request"]["config"]["film"]["layers"]) == 4
