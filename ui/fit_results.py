"""A fit's result, on the Analyse page (a completed run) and in the History (a saved "fit" record):
χ² with N and the free parameters, which search found it, the data with the fit (R, R·Q⁴), the
residuals in σ, the SLD profile with its MCMC band, the parameters ± errors, their correlations,
the contrasts; Save to history and the exports (the results bundle, fit.json, .ort)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from reflect_core.accounts.access import User
from reflect_core.analysis import fit_runs
from reflect_core.analysis.fit import FitResult
from reflect_core.base import storage
from reflect_core.base.errors import ReflectError
from reflect_core.formats.curves import Curve, canonical_text, parse_canonical
from reflect_core.formats.orso_out import fit_orso_text
from reflect_core.viz.fit_bundle import fit_bundle
from reflect_core.viz.fit_figures import fit_figure, fit_figures

VIEWS = {"both": "R and R·Q⁴", "R": "R", "RQ4": "R·Q⁴"}


@st.cache_data(show_spinner=False, max_entries=8)
def _fitted(fit_text: str, curve_texts: tuple[str, ...]) -> FitResult:
    """The fit's model curves at the data's points (refnx; a second or so), once per result."""
    curves = [parse_canonical(text, f"dataset {k}") for k, text in enumerate(curve_texts)]
    return FitResult.from_json(json.loads(fit_text), curves)


def fitted(fit: dict, curves: list[Curve]) -> FitResult:
    return _fitted(json.dumps(fit, sort_keys=True), tuple(canonical_text(curve) for curve in curves))


def chi2_statement(fit: dict) -> str:
    """χ² in words: its value, N, p and N − p, and the search that found it."""
    n, p, chi2, reduced = (fit.get(key) for key in ("n_points", "n_free", "chi2", "chi2_reduced"))
    if None in (n, p, chi2, reduced):
        text = "χ² is not available"
    else:
        text = (f"χ²_red = **{reduced:.4g}**: χ² = {chi2:.4g} over N = {n} points with dR > 0 and p = {p} free "
                f"parameters (χ²_red = χ² / (N − p), N − p = {n - p})")
    text += f"; search: {fit.get('search') or 'unknown'}"
    if fit.get("found_by") and fit.get("found_by") != fit.get("search"):
        text += f", best point found by {fit['found_by']}"
    mcmc = fit.get("mcmc")
    if mcmc:
        text += (f"; MCMC {mcmc.get('steps')} steps × {mcmc.get('walkers')} walkers ({mcmc.get('samples')} samples "
                 f"after {mcmc.get('burn')} burn-in steps, thinned by {mcmc.get('thin')})")
    return text + "."


def parameter_table(fit: dict) -> pd.DataFrame:
    """One row per free parameter: fitted value ± standard error, start, bounds, and the MCMC
    median with its 68 % and 95 % intervals when there was a sampling."""
    sampled = {p["name"]: p for p in (fit.get("mcmc") or {}).get("parameters") or []}
    rows = []
    for p in fit.get("parameters") or []:
        lo, hi = (list(p.get("bounds") or []) + [None, None])[:2]
        row = {"parameter": p["name"], "value": p.get("value"), "± (1σ)": p.get("stderr"),
               "start": p.get("initial"), "min": lo, "max": hi}
        if p["name"] in sampled:
            s = sampled[p["name"]]
            row.update({"MCMC median": s.get("median"), "68 % interval": f"{s.get('p16'):.5g} – {s.get('p84'):.5g}",
                        "95 % interval": f"{s.get('p2_5'):.5g} – {s.get('p97_5'):.5g}"})
        rows.append(row)
    return pd.DataFrame(rows)


def contrast_table(fit: dict) -> pd.DataFrame:
    return pd.DataFrame([{"contrast": c.get("name"), "ambient SLD (10⁻⁶ Å⁻²)": c.get("ambient_sld"),
                          "scale": c.get("scale"), "background": c.get("background"), "points": c.get("n_points"),
                          "χ²_red": c.get("chi2_reduced")} for c in fit.get("contrasts") or []])


def render_fit_result(fit: dict, curves: list[Curve], key: str) -> FitResult:
    """The result's numbers and figures; ``key`` keeps widget keys apart (a run id, a record id)."""
    st.markdown(chi2_statement(fit))
    if (fit.get("chi2_reduced") or 0) > 3:
        st.caption("χ²_red well above 1: the model does not explain the data within its error bars (or dR is "
                   "underestimated); the ± errors are those of the data alone and then understate the uncertainty.")
    for note in fit.get("notes") or []:
        st.caption(note)
    with st.spinner("Computing the fitted curves…"):
        result = fitted(fit, curves)
    view = st.radio("Data and fit as", list(VIEWS), format_func=VIEWS.get, horizontal=True, key=f"fit_view_{key}")
    figures = fit_figures(fit, result.curves, result.profile)
    if view != "both":
        figures["data_and_fit"] = fit_figure(result.curves, view)
    c = st.columns(2)
    for k, (name, figure) in enumerate(figures.items()):
        c[k % 2].plotly_chart(figure, key=f"fit_fig_{name}_{key}")
    st.subheader("Parameters")
    st.dataframe(parameter_table(fit), hide_index=True, width="stretch",
                 column_config={col: st.column_config.NumberColumn(col, format="%.5g")
                                for col in ("value", "± (1σ)", "start", "min", "max", "MCMC median")})
    if fit.get("contrasts"):
        st.dataframe(contrast_table(fit), hide_index=True, width="stretch",
                     column_config={col: st.column_config.NumberColumn(col, format="%.4g")
                                    for col in ("ambient SLD (10⁻⁶ Å⁻²)", "scale", "background", "χ²_red")})
    return result


def render_exports(fit: dict, result: FitResult, name: str, key: str) -> None:
    """Downloads: the results bundle (zip), fit.json, the data and the fit as ORSO text."""
    stem = storage.file_stem(name, "fit")
    c = st.columns(3)
    c[0].download_button("Results bundle (.zip)", key=f"fit_zip_{key}", mime="application/zip",
                         file_name=f"{stem}.zip", help="fit.json, the curves and profile as CSV, fit.ort, a refnx "
                                                       "script and the figures as one offline HTML page.",
                         data=lambda: fit_bundle(fit, result.curves, result.profile, title=name))
    c[1].download_button("fit.json", json.dumps(fit, indent=1), key=f"fit_json_{key}", file_name=f"{stem}.json",
                         mime="application/json")
    c[2].download_button("Data and fit (.ort)", key=f"fit_ort_{key}", file_name=f"{stem}.ort", mime="text/plain",
                         data=lambda: fit_orso_text(fit, result.curves))


def render_run_result(run: fit_runs.FitRun, user: User) -> None:
    """A completed fit of the Analyse page, with Save to history and the exports."""
    name = run.name or f"fit {run.run_id}"
    st.subheader("Result")
    try:
        fit, curves = fit_runs.result_json(run), fit_runs.curves_of(run)
        result = render_fit_result(fit, curves, run.run_id)
    except (ReflectError, OSError, KeyError, TypeError, ValueError) as exc:
        st.error(f"This fit's result cannot be shown: {type(exc).__name__}: {exc}")
        return
    render_exports(fit, result, name, run.run_id)
    with st.form(f"fit_save_{run.run_id}", border=False):
        c = st.columns([3, 1], vertical_alignment="bottom")
        record_name = c[0].text_input("Name in the history", value=name[:80], max_chars=80)
        if c[1].form_submit_button("Save to history", width="stretch"):
            try:
                record = fit_runs.save_fit(user, run, record_name)
                st.success(f"Saved '{record['name']}' to your history.")
            except (ReflectError, OSError) as exc:
                st.error(f"Not saved: {exc}")


def render_saved_fit(record: dict) -> None:
    """A "fit" history record: its result and exports (History page)."""
    saved = fit_runs.load_saved(record)
    start = saved.request.start or {}
    st.caption(f"Fit of {', '.join(saved.request.curves)} from {start.get('label') or start.get('kind')}; "
               f"search {saved.request.search}, MCMC {saved.request.mcmc_steps} steps.")
    result = render_fit_result(saved.fit, saved.curves, record["id"])
    render_exports(saved.fit, result, record["name"], record["id"])
