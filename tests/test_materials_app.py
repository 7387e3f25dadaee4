"""The explorer's film built from a line of text, the SLD calculator and the materials table,
driven through Streamlit's AppTest (no browser)."""

import pytest
from conftest import ROOT
from layer_table import table_values
from streamlit.testing.v1 import AppTest

APP = str(ROOT / "app.py")
TEXT = "explorer_film_text_text"
APPLY = "explorer_film_text_apply"


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def names(at):
    return [row["name"] for row in at.session_state["film_rows"]]


def apply(at, line):
    at.text_input(key=TEXT).set_value(line)
    at.button(key=APPLY).click().run()
    assert not at.exception, at.exception
    return [e.value for e in at.error]


def test_the_input_shows_an_example_and_units(app):
    box = app.text_input(key=TEXT)
    assert "Si / SiO2" in box.placeholder and "Å" in box.label
    assert "substrate first" in box.label


def test_a_text_film_replaces_the_explorers_film_and_can_be_undone(app):
    before = names(app)
    errors = apply(app, "Si / SiO2 12 rough 3 / 3 x [PEO 33 / dPS 40] / air")
    assert errors == []
    assert names(app) == ["Si", "SiO2", "PEO#1", "dPS#1", "PEO#2", "dPS#2", "PEO#3", "dPS#3", "air"]
    rows = app.session_state["film_rows"]
    assert rows[1]["thickness"] == 12.0 and rows[1]["roughness"] == 3.0
    assert rows[3]["sld"] == pytest.approx(6.4606, abs=1e-4)
    assert any("9 layers" in s.value and "tied" in s.value for s in app.success)  # what was built
    assert len(app.get("plotly_chart")) == 2
    # the layer editor shows the new film
    assert table_values(app)["thickness"][2] == 33.0
    next(b for b in app.button if "Undo" in b.label).click().run()
    assert names(app) == before


def test_the_beam_side_is_kept(app):
    app.radio(key="film_beam").set_value("substrate").run()
    apply(app, "Si / Au 100 / D2O")
    assert app.session_state["film_beam"] == "substrate" and names(app) == ["Si", "Au", "D2O"]


@pytest.mark.parametrize(("line", "message"), [
    ("Si / PMMX 500 / air", "token 2 'PMMX 500': unknown material 'PMMX'; did you mean PMMA?"),
    ("Si / PMMA / air", "token 2 'PMMA': needs a thickness in Å"),
    ("", "film text: empty"),
    ("Si / 30 x [PEO 33] / air", "at most 20 here"),  # the local profile's layer limit
])
def test_a_bad_line_shows_an_error_and_keeps_the_film(app, line, message):
    rows = [dict(r) for r in app.session_state["film_rows"]]
    errors = apply(app, line)
    assert any(message in e and "current film is unchanged" in e for e in errors), errors
    assert app.session_state["film_rows"] == rows
    assert len(app.get("plotly_chart")) == 2


def test_sld_calculator(app):
    app.text_input(key="explorer_materials_formula").set_value("C8H8")
    app.number_input(key="explorer_materials_density").set_value(1.05).run()
    text = " ".join(m.value for m in app.markdown)
    assert "SLD **1.4116** 10⁻⁶ Å⁻²" in text and "1.798 Å" in text and "C8H8@1.05" in text
    app.text_input(key="explorer_materials_formula").set_value("Xx").run()
    assert any("unknown element Xx" in e.value for e in app.error)
    app.text_input(key="explorer_materials_formula").set_value("C8H8")
    app.number_input(key="explorer_materials_density").set_value(0.0).run()
    assert any("density: must be > 0 g/cm³" in e.value for e in app.error)
    assert app.number_input(key="explorer_materials_density").max == 25.0


def test_materials_table_has_units(app):
    assert len(app.dataframe) == 1  # the layer table only: the materials are shown on request
    app.toggle(key="explorer_materials_table").set_value(True).run()
    table = next(d for d in app.dataframe if "film_table" not in d.proto.id).value
    assert {"Formula", "Density (g/cm³)", "SLD (10⁻⁶ Å⁻²)"} <= set(table.columns)
    si = table[table["Material"] == "Si"].iloc[0]
    assert si["SLD (10⁻⁶ Å⁻²)"] == pytest.approx(2.073, abs=1e-3) and si["Density (g/cm³)"] == 2.329
