"""Film explorer: edit a layer stack and see R(Q) and the SLD profile at once."""

from __future__ import annotations

import numpy as np
import streamlit as st

from reflect_core.accounts.limits import LimitError, check_film
from reflect_core.formats.curves import q_grid
from reflect_core.formats.downloads import curve_csv, profile_csv
from reflect_core.physics.film import FilmError, roughness_warnings
from reflect_core.physics.presets import PRESETS
from reflect_core.physics.simulate import (
    MAX_BACKGROUND,
    MAX_DQ,
    MAX_Q,
    MAX_Q_POINTS,
    MAX_SCALE,
    PYREFLECT_DQ,
    PYREFLECT_NQ,
    PYREFLECT_QMAX,
    PYREFLECT_QMIN,
    CurveSettings,
    check_curve_request,
    critical_q,
    film_profile,
    film_reflectivity,
    fresnel_reflectivity,
    graded_reflectivity,
)
from reflect_core.store import history
from reflect_core.uploads import UploadError, validate_upload
from reflect_core.viz.figures import reflectivity_figure, sld_figure
from ui import film_editor, workspace
from ui.materials import film_text_builder, materials_panel
from ui.overlay import chosen_overlay, overlay_selector, render_agreement
from ui.session import current_limits, current_user
from ui.state import keep, remembered, seed

LAST_GOOD = "explorer_last_good"
PLOTS = {"R": "R", "RQ4": "R·Q⁴", "RF": "R / R_F"}
limits = current_limits()


def bounded(key: str, default, low, high, shared: str | None = None) -> str:
    """``seed`` for a number input with a range: a remembered value outside it (a session from
    before these bounds) is refused with a message and replaced by the nearest bound, since
    Streamlit cannot draw a widget whose value is out of range. Typed values never get there:
    the widget refuses them in the browser."""
    seed(key, default, shared)
    value = st.session_state[key]
    if not low <= value <= high:
        st.session_state[key] = min(max(value, low), high)
        st.warning(f"{key}: {value:g} is outside [{low:g}, {high:g}] (physical bounds); "
                   f"using {st.session_state[key]:g}.")
    return key


st.title("Film explorer")
st.caption(
    "Layers are listed substrate first, ambient last. Units: SLD in 10⁻⁶ Å⁻², thickness and roughness in Å, "
    "Q in Å⁻¹. Curves are recomputed on every edit. Your film and these settings are kept for you on this server: "
    "a browser refresh or a closed tab loses nothing."
)
film_editor.ensure_film()
workspace.render_notice()
with st.expander("What this app does · start here", expanded=not st.session_state.get("explorer_seen")):
    st.markdown("From a film model to a trained network to an analysed measurement, in three paths:")
    c = st.columns(3)
    c[0].markdown("**Explore a film**: edit the layers below (or load a preset) and see R(Q) and the SLD "
                  "profile at once; overlay a measured curve to compare.")
    c[1].markdown("**Train a network** that reads an NR curve and returns an SLD profile, on curves "
                  "generated from this film and the ranges you let vary.")
    c[2].markdown("**Analyse a measurement**: upload a curve, predict its profile with a network, then "
                  "refine it with a fit (with uncertainties).")
    c[0].page_link("app_pages/explorer.py", label="You are here", icon=":material/show_chart:", disabled=True)
    c[1].page_link("app_pages/train.py", label="Go to training", icon=":material/model_training:")
    c[2].page_link("app_pages/models.py", label="Upload a curve and predict", icon=":material/deployed_code:")
    c[2].page_link("app_pages/analyse.py", label="Fit a film to it", icon=":material/query_stats:")
st.session_state["explorer_seen"] = True  # open on the first visit of a session only

# --- film sources: presets, upload, text --------------------------------------------------------
with st.expander("Presets and film upload", expanded=False):
    left, right = st.columns(2)
    with left:
        preset = st.selectbox("Preset", list(PRESETS), key=seed("explorer_preset", next(iter(PRESETS))))
        keep("explorer_preset", preset)
        if st.button("Load preset", help="Replaces the table (Undo, under the table, brings the film back)."):
            film_editor.load_film(PRESETS[preset])
            st.session_state.pop("explorer_upload_error", None)  # about a film that is no longer the question
            st.rerun()
    with right:
        upload = st.file_uploader(
            "Upload a film (JSON)",
            type=["json"],
            help="This app's own film JSON, or a pyreflect web-interface export ({\"params\": {\"layers\": …}}). "
            "Layers substrate first.",
        )
        if upload is not None and st.session_state.get("explorer_upload_id") != upload.file_id:
            st.session_state["explorer_upload_id"] = upload.file_id
            try:
                uploaded = validate_upload(upload.name, upload.getvalue(), "film", limits.upload_bytes).content
                check_film(uploaded, limits)  # the profile's layer limit, as for typed films
                film_editor.load_film(uploaded)
                st.rerun()
            except UploadError as exc:  # names the file itself
                st.session_state["explorer_upload_error"] = str(exc)
            except LimitError as exc:
                st.session_state["explorer_upload_error"] = f"{upload.name}: {exc}"
        if st.session_state.get("explorer_upload_error"):
            st.error(st.session_state["explorer_upload_error"] + " Your current film is unchanged.")
            if upload is None:
                st.session_state.pop("explorer_upload_error")
with st.expander("Build from text · materials and SLD calculator", expanded=False):
    built = film_text_builder("explorer_film_text", beam_from=st.session_state.get(film_editor.BEAM, "ambient"),
                              max_layers=limits.film_layers, validate=lambda film: check_film(film, limits))
    if built is not None:
        film_editor.load_film(built.film)  # undoable
        st.session_state.pop("explorer_upload_error", None)
        st.rerun()
    materials_panel("explorer_materials")


INSTRUMENT = {  # key: (default, low, high); bounds from physics.simulate
    "qmin": (PYREFLECT_QMIN, 0.0, MAX_Q), "qmax": (PYREFLECT_QMAX, 0.0, MAX_Q), "nq": (PYREFLECT_NQ, 2, MAX_Q_POINTS),
    "dq_percent": (100 * PYREFLECT_DQ, 0.0, 100 * MAX_DQ), "background": (0.0, 0.0, MAX_BACKGROUND),
    "scale": (1.0, 0.0, MAX_SCALE),
}


def instrument_values() -> dict:
    """The Q grid and instrument settings as the inputs below hold them (seeded on a first visit):
    read before those inputs are drawn, so the charts can be computed and sent first."""
    for key, (default, low, high) in INSTRUMENT.items():
        bounded(key, default, low, high)
    seed("spacing", "log")
    seed("graded", False)
    return {key: keep(key, st.session_state[key]) for key in (*INSTRUMENT, "spacing", "graded")}


def instrument_inputs() -> None:
    with st.expander("Q range, resolution, background and scale", expanded=True):
        c = st.columns(4)
        c[0].number_input("Q min (Å⁻¹)", key="qmin", min_value=0.0, max_value=MAX_Q, format="%.4f", step=0.001)
        c[1].number_input("Q max (Å⁻¹)", key="qmax", min_value=0.0, max_value=MAX_Q, format="%.4f", step=0.01,
                          help=f"At most {MAX_Q:g} Å⁻¹: NR is not measured past ~1.")
        c[2].number_input("Points", key="nq", min_value=2, max_value=MAX_Q_POINTS, step=1)
        c[3].selectbox("Spacing", ["log", "linear"], key="spacing")
        c = st.columns(4)
        c[0].number_input(
            "dQ/Q (FWHM, %)", key="dq_percent", min_value=0.0, max_value=100 * MAX_DQ, format="%.4f", step=0.5,
            help="Gaussian resolution, FWHM as a percentage of Q. pyreflect's default is 2.94855 %. 0 = no smearing.",
        )
        c[1].number_input("Background (R units)", key="background", min_value=0.0, max_value=MAX_BACKGROUND,
                          format="%.2e", step=1e-7, help="Constant added to R after smearing.")
        c[2].number_input("Scale", key="scale", min_value=0.0, max_value=MAX_SCALE, format="%.4f", step=0.01)
        st.toggle(
            "Also show R computed from the SLD profile (graded interfaces)", key="graded",
            help="Névot–Croce roughness (the slab model) and the graded erf profile agree for small roughness; "
            "for rough interfaces they differ physically. This draws both.",
        )


def compute(values: dict) -> dict | None:
    """The curves of the edited film, kept as the last good result; None (with the reasons shown)
    when an input is bad."""
    problems = []
    try:
        film = film_editor.current_film()
        check_film(film, limits)  # a film opened from history or restored can have more layers than allowed
    except (FilmError, LimitError) as exc:
        film = None
        problems.append(f"Film: {exc}")
    try:
        q = q_grid(values["qmin"], values["qmax"], values["nq"], values["spacing"])
        settings = CurveSettings(dq=values["dq_percent"] / 100.0, scale=values["scale"],
                                 background=values["background"])
        if film is not None:  # refused here, before anything the size of the request is allocated
            check_curve_request(film, q, settings)
    except ValueError as exc:  # InvalidInput is one
        problems.append(f"Q grid or instrument: {exc}")
    for problem in problems:
        st.error(problem, icon="⚠️")
    if problems:
        return None
    graded = values["graded"]
    if graded:
        try:
            check_curve_request(film, q, settings, graded=True)
        except ValueError as exc:
            graded = False
            st.warning(f"Graded curve not drawn: {exc}")
    r = film_reflectivity(film, q, settings)
    z, sld, isld = film_profile(film)
    curves = [("slab model (Névot–Croce)", q, r)]
    if graded:
        curves.append(("graded SLD profile", q, graded_reflectivity(film, q, settings)))
    return dict(film=film, q=q, r=r, z=z, sld=sld, isld=isld, curves=curves,
                instrument=dict(dq=settings.dq, background=values["background"], scale=values["scale"]))


def plot_options(names: list[str], q_c: float | None) -> None:
    """The plot choices and the overlay selector, above the charts but sent after them."""
    row = st.container(horizontal=True, vertical_alignment="center")
    row.radio("Plot", list(PLOTS), key="plot", horizontal=True, format_func=PLOTS.get, label_visibility="collapsed",
              help="R·Q⁴ and R/R_F remove the Fresnel decay; R_F is the bare backing's reflectivity (no film, "
                   "sharp) with the same resolution.")
    row.toggle("log Q", key="log_q", help="A logarithmic Q axis.")
    row.caption(f"Critical edge Q_c = **{q_c:.4g} Å⁻¹** (4√(πΔρ), the backing against the incident medium)"
                if q_c is not None else "No critical edge: the backing's SLD is not above the incident medium's.",
                width="content")
    overlay_selector(current_user(), names)


def draw(last: dict, values: dict) -> None:
    options = st.container()  # filled after the charts: the browser redraws them first
    if remembered("plot") not in PLOTS:  # a kept value from an older version
        keep("plot", "R")
    plot = keep("plot", st.session_state[seed("plot", "R")])
    log_q = keep("log_q", st.session_state[seed("log_q", False)])
    names, measured = chosen_overlay(current_user())
    q_c = critical_q(last["film"])
    left, right = st.columns(2)
    film_now = last["film"]
    reflectivity = reflectivity_figure(
        last["curves"], rq4=plot == "RQ4", log_q=log_q, q_c=q_c, data=measured,
        fresnel=(lambda q: fresnel_reflectivity(film_now, q, last["instrument"]["dq"])) if plot == "RF" else None)
    # Styled by their own template (viz.figures.APP_TEMPLATE, Streamlit's look) without Streamlit's theming
    # pass in the browser on every redraw.
    left.plotly_chart(reflectivity, key="explorer_reflectivity", theme=None)
    right.plotly_chart(sld_figure(last["z"], last["sld"], last["isld"]), key="explorer_sld", theme=None)
    with options:
        plot_options(names, q_c)
    if measured is not None:
        render_agreement(last["film"], measured, **last["instrument"])
    # Under the charts: what the slab model approximates here (not the first thing a newcomer reads).
    warnings = roughness_warnings(last["film"])
    if warnings:
        text = (
            "Névot–Croce roughness is approximate where roughness exceeds 20 Å or a third of an adjacent layer: "
            + ", ".join(warnings) + "."
        )
        if len(last["curves"]) > 1:
            r_nc, r_gr = last["curves"][0][2], last["curves"][1][2]
            worst = float(np.max(np.abs(np.log10(r_gr / r_nc))))
            text += f" Here the graded-profile curve differs by up to {worst:.2f} decades."
        else:
            text += " Turn on 'Also show R computed from the SLD profile' to see the difference."
        st.info(text, icon=":material/info:")
    downloads(last, values)


def downloads(last: dict, values: dict) -> None:
    # Content-wide buttons in a row that wraps: in fixed columns, narrow screens cut every label to "Download …".
    row = st.container(horizontal=True)
    # The files are made when a button is pressed (callables): formatting them on every edit cost ~7 % of it.
    row.download_button("Download curve (CSV: Q,R)",
                        lambda last=last: curve_csv(last["film"], last["q"], last["r"], **last["instrument"]),
                        file_name="curve.csv", mime="text/csv", help="With the film and resolution as # lines.")
    row.download_button("Download profile (CSV: z,sld,isld)",
                        lambda last=last: profile_csv(last["film"], last["z"], last["sld"], last["isld"]),
                        file_name="profile.csv", mime="text/csv", help="With the film as # lines.")
    row.download_button("Download film (JSON)", last["film"].to_json, file_name="film.json", mime="application/json")
    with row.popover("Save to history"):
        if st.session_state.get("save_film_seed") != last["film"].name:  # a newly loaded film brings its own name
            st.session_state["save_film_seed"] = last["film"].name
            st.session_state["save_film_name"] = (last["film"].name or "my film")[:80]
        name = st.text_input("Name", max_chars=80, key="save_film_name")
        if st.button("Save", key="save_film"):
            try:
                params = {"film": last["film"].to_dict(), "qmin": values["qmin"], "qmax": values["qmax"],
                          "nq": int(values["nq"]), "spacing": values["spacing"], "dq": values["dq_percent"] / 100,
                          "background": values["background"], "scale": values["scale"]}
                history.add(current_user(), "film", name, params)
                st.success(f"Saved '{name.strip()}' to your history.")
            except (ValueError, history.HistoryError) as exc:
                st.error(str(exc))


@st.fragment
def film_and_curves() -> None:
    """The charts, the tuner, the table and the instrument: an edit reruns only this (the sidebar, the
    login and the film sources above stay as they are). The curves are computed from the inputs'
    values and sent first, so the browser redraws them while the inputs below are still being sent."""
    values = instrument_values()
    result = compute(values)
    if result is not None:
        st.session_state[LAST_GOOD] = result
    last = st.session_state.get(LAST_GOOD)
    if last is not None:
        if result is None:
            st.warning("Showing the last valid curve until the input below is fixed.")
        draw(last, values)
    film_editor.render_layer_tuner()
    beam = st.radio(
        "Neutrons arrive from",
        ["ambient", "substrate"],
        format_func=lambda s: ("the ambient (top, e.g. air)" if s == "ambient"
                               else "the substrate (e.g. through a Si block into liquid)"),
        horizontal=True,
        key=seed(film_editor.BEAM, "ambient"),
    )
    keep(film_editor.BEAM, beam)
    film_editor.render_layer_editor(max_layers=limits.film_layers)
    instrument_inputs()
    if result is not None:  # last: the disk write does not delay the charts
        workspace.keep_explorer(result["film"])  # written only when something changed


film_and_curves()
