"""Widgets shared by pages: a film built from one line of text, an SLD calculator (formula and
density → SLD) and the materials table. The parsing and the physics are in reflect_core
(``formats.film_text``, ``physics.materials``); these only read inputs and show results."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from reflect_core.base.errors import ReflectError
from reflect_core.formats.film_text import (
    EXAMPLE,
    EXAMPLE_REPEAT,
    MAX_REPEAT,
    MAX_TEXT_CHARS,
    FilmText,
    film_to_text,
    parse_film_text,
)
from reflect_core.physics.film import MAX_LAYERS, Film
from reflect_core.physics.materials import MATERIALS, MAX_DENSITY, WAVELENGTH, Material, MaterialError, formula_sld

SLD_UNIT = "10⁻⁶ Å⁻²"
SYNTAX_HELP = f"""Layers separated by `/`, **substrate first, ambient last**. Each layer is a material, then an
optional thickness in Å (or `50 nm`), `rough R` (rms roughness in Å of the layer's top interface) and
`isld I` (absorption, {SLD_UNIT}).

A material is a name from the materials table (`Si`, `SiO2`, `Au`, `D2O`, `dPS`, `PMMA`, `air`, …),
a formula with its density in g/cm³ (`C8H8@1.05`, `H[2]2O@1.107`), or an SLD in {SLD_UNIT}
(`sld 3.5`, `3.5`, or named: `siox=3.47`).

Repeats: `{EXAMPLE_REPEAT}` (`x`, `×` or `*`, at most {MAX_REPEAT} copies) gives PEO#1, dPS#1, PEO#2, …
with each copy's parameters tied to the first copy's for fitting."""


def _built_key(key: str) -> str:
    return f"{key}_built"


def film_text_builder(key: str, *, beam_from: str = "ambient", max_layers: int = MAX_LAYERS,
                      validate: Callable[[Film], object] | None = None,
                      button: str = "Apply") -> FilmText | None:
    """A text input and a button; returns the parsed FilmText on the run the button is clicked
    with a valid line (``validate`` may refuse the film by raising a ReflectError, e.g. a profile's
    layer limit), else None. Errors are shown under the input; nothing else changes."""
    left, right = st.columns([6, 1], vertical_alignment="bottom")
    text = left.text_input(
        "Film as text (substrate first, ambient last; thickness and roughness in Å)",
        key=f"{key}_text",
        placeholder=EXAMPLE,
        max_chars=MAX_TEXT_CHARS,
        help=SYNTAX_HELP,
    )
    clicked = right.button(button, key=f"{key}_apply", type="primary",
                           help="Builds the film from the line and replaces the current one.")
    built = None
    if clicked:
        try:
            built = parse_film_text(text, beam_from=beam_from, max_layers=max_layers)
            if validate is not None:
                validate(built.film)
        except (ReflectError, ValueError) as exc:  # every message names the token or the limit
            message = str(exc)
            st.error(message + (" " if message.endswith((".", "?")) else ". ") + "The current film is unchanged.",
                     icon="⚠️")
            return None
        st.session_state[_built_key(key)] = built
    last = st.session_state.get(_built_key(key))
    if last is not None:
        show_built(last)
    return built


def show_built(built: FilmText) -> None:
    """What a line built: the layers as text, the ties of its repeats and the materials' SLDs."""
    film = built.film
    ties = f"; {len(built.ties)} parameters tied to the first copy of a repeat" if built.ties else ""
    st.success(f"Last built from text: {len(film.layers)} layers, {film.total_thickness:g} Å between "
               f"substrate and ambient{ties}.")
    st.code(film_to_text(film), language=None, wrap_lines=True)
    st.dataframe(material_rows(built.materials), hide_index=True)


def material_rows(materials) -> list[dict]:
    """Rows for a table of materials, with units in the column names."""
    return [{
        "Material": m.name,
        "Formula": m.formula or "—",
        "Density (g/cm³)": m.density,
        f"SLD ({SLD_UNIT})": round(m.sld, 4),
        f"iSLD ({SLD_UNIT}, {WAVELENGTH} Å)": float(f"{m.isld:.3g}"),
        "Also called": ", ".join(m.aliases),
        "Density from": m.source,
    } for m in materials]


def sld_calculator(key: str) -> Material | None:
    """Formula and density in, SLD and iSLD out (None until a valid formula is typed)."""
    left, right = st.columns([3, 1])
    formula = left.text_input("Chemical formula", key=f"{key}_formula", placeholder="C8H8, D2O, H[2]2O, C5H8O2",
                              help="Elements with counts, groups in ( ); deuterium as D or H[2], other "
                              "isotopes as El[A] (e.g. B[10]).")
    density = right.number_input("Density (g/cm³)", key=f"{key}_density", min_value=0.0, max_value=MAX_DENSITY,
                                 value=1.0, step=0.01, format="%.4g",
                                 help=f"Mass density, at most {MAX_DENSITY:g} g/cm³ (osmium is 22.6).")
    if not formula.strip():
        st.caption(f"Type a formula to get its neutron SLD in {SLD_UNIT}.")
        return None
    try:
        material = formula_sld(formula, density)
    except MaterialError as exc:
        st.error(str(exc), icon="⚠️")
        return None
    st.markdown(f"SLD **{material.sld:.4f}** {SLD_UNIT} · iSLD **{material.isld:.3g}** {SLD_UNIT} "
                f"(absorption at {WAVELENGTH} Å) · in a film line: `{material.formula}@{density:g}`")
    return material


def materials_panel(key: str) -> None:
    """The SLD calculator and the materials table."""
    st.markdown("**SLD calculator**")
    sld_calculator(key)
    # On request: the table's Arrow conversion on every rerun of the explorer cost ~8 % of an edit's server time.
    if st.toggle(f"Show the {len(MATERIALS)} materials usable in a film line", key=f"{key}_table"):
        st.dataframe(material_rows(MATERIALS), hide_index=True)
