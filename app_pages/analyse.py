"""Analyse: fit a film to measured curves (one per contrast) from a start (the explorer's film, a
history record, a film text, a model's prediction), in a background runner process that survives
reruns and navigation; follow it, stop it, see and save its result."""

from __future__ import annotations

import streamlit as st

from reflect_core.analysis import fit_runs
from reflect_core.analysis.fit.datasets import own_resolution
from reflect_core.base.errors import ReflectError
from reflect_core.physics.simulate import PYREFLECT_DQ
from ui.bounds_editor import render_bounds_editor
from ui.fit_data import render_data
from ui.fit_monitor import SELECTED, choose_fit, render_fit_monitor
from ui.fit_results import render_run_result
from ui.fit_setup import (
    fit_config,
    render_contrasts,
    render_mixes,
    render_resolution,
    render_scaling,
    render_ties,
)
from ui.fit_start import render_start
from ui.session import current_limits, current_user
from ui.state import keep, seed

SEARCH_LABELS = {"auto": "auto (least squares, then a global search if the fit is still poor: χ²_red > 3)",
                 "local": "local (least squares from the start)",
                 "global": "global (differential evolution within the bounds, then least squares)"}
REQUEST_KEY = "fit_request"  # the last request the form made (JSON form), for the page's tests

user, limits = current_user(), current_limits()
max_steps = fit_runs.mcmc_step_limit(limits)
st.title("Analyse measured data")
st.caption("Fit a film to your measured curves: choose the data, where the fit starts and what varies. The fit runs "
           "in a separate process: it keeps going if you leave this page, and you can stop it. χ² is computed over "
           "the points with dR > 0 of all curves together, χ²_red = χ² / (N − p) with p the free parameters.")

st.session_state.pop(REQUEST_KEY, None)  # made again below when the form is complete
st.header("1. Data")
curves = render_data(user, limits)

if curves:
    st.header("2. Start")
    start = render_start(user, curves)
    if start is not None:
        st.caption(f"Start: {len(start.film.layers)} layers ({start.film.layers[0].name} … "
                   f"{start.film.layers[-1].name}), beam from the {start.film.beam_from}, from {start.label}."
                   + (f" {start.note}" if start.note else ""))

        st.header("3. What varies")
        st.caption("Tick the parameters the fit may change and set their ranges; the others stay at the start's "
                   "values.")
        bounds = render_bounds_editor(start.film, prefix="fit")
        c = st.columns(2)
        with c[0]:
            st.caption("Ties: a parameter that takes another's value (not a free parameter).")
            ties = render_ties(start.film, start.ties)
            st.caption("Mixed layers: SLD = φ·A + (1−φ)·B, with φ fitted (φ min = φ max fixes it); tick "
                       "\"B = ambient\" for a solvent that follows each contrast.")
            mixes = render_mixes(start.film)
        with c[1]:
            st.caption("Scale and background (each curve has its own when several are fitted).")
            scale, background = render_scaling(start.config["scale"], start.config["background"],
                                               start.signature)
        names = [name for name, _ in curves]
        if len(curves) > 1:
            st.caption("Contrasts: every structure parameter is shared; each curve has its own ambient SLD.")
        contrasts = render_contrasts(start.film, names)
        dq = render_resolution() if not all(own_resolution(curve) for _, curve in curves) else PYREFLECT_DQ

        st.header("4. Search")
        c = st.columns([3, 2, 1])
        search = keep("fit_search", c[0].radio("Search", list(SEARCH_LABELS), key=seed("fit_search", "auto"),
                                               format_func=SEARCH_LABELS.get))
        seed("fit_mcmc_steps", 0)
        st.session_state["fit_mcmc_steps"] = min(st.session_state["fit_mcmc_steps"], max_steps)
        steps = keep("fit_mcmc_steps", c[1].number_input(
            "MCMC steps (0 = none)", key="fit_mcmc_steps", min_value=0, max_value=max_steps, step=500,
            help=f"After the fit, sample the posterior (refnx's emcee) for parameter intervals and an SLD band. "
                 f"At most {max_steps:,} steps here ({limits.profile} profile); MCMC can take minutes. A fit "
                 f"stops after {fit_runs.time_limit_s(limits) / 60:g} min."))
        fit_seed = keep("fit_seed", c[2].number_input("Seed", key=seed("fit_seed", 0), min_value=0,
                                                      max_value=2**32 - 1))
        request = {"kind": "fit", "curves": names, "search": search, "mcmc_steps": int(steps),
                   "seed": int(fit_seed), "start": {"kind": start.kind, "label": start.label[:200]},
                   "config": fit_config(start.film, bounds, ties, scale, background, contrasts, dq, mixes)}
        st.session_state[REQUEST_KEY] = request
        try:  # checked as the fit will check it, so that a mistake shows before anything starts
            fit_runs.FitRequest.parse(request, limits)
            problem = None
        except ReflectError as exc:
            problem = str(exc)
            st.error(f"This fit cannot start: {problem}")
        with st.form("fit_submit", border=False):
            c = st.columns([3, 1], vertical_alignment="bottom")
            fit_name = c[0].text_input("Fit name (optional)", max_chars=80, placeholder="e.g. PMMA on Si, D2O + H2O")
            if c[1].form_submit_button("Fit", type="primary", width="stretch", disabled=problem is not None):
                try:
                    run_id = fit_runs.submit(user, request, [curve for _, curve in curves],
                                             name=fit_name.strip() or None, limits=limits)
                    st.session_state[SELECTED] = run_id
                except ReflectError as exc:  # an invalid configuration names its field
                    st.error(f"Not started: {exc}")

st.header("5. Fits")
run = choose_fit(user)
if run is not None:
    render_fit_monitor(run.run_id, run.state, user)
    if run.state == "completed":
        render_run_result(run, user)
