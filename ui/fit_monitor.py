"""The user's background fits: choose one, follow it (phase, done/total, heartbeat, log), stop
or delete it. Polled with ``st.fragment(run_every=...)``; each poll also checks the runner is
alive (``fit_runs.get``), so a dead runner shows up as failed with the reason."""

from __future__ import annotations

import time

import streamlit as st

from reflect_core.accounts.access import User
from reflect_core.analysis import fit_runs
from reflect_core.base.errors import NotFound, ReflectError
from ui.state import choose_newest_first

POLL_SECONDS = 1.5
SELECTED = "fit_selected_run"
ERROR = "fit_action_error"


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "?"


def _label(run: fit_runs.FitRun) -> str:
    return f"{run.name or run.run_id} · {_when(run.created)}"


def choose_fit(user: User) -> fit_runs.FitRun | None:
    """The fit selector, newest first; None when the user has none."""
    return choose_newest_first("Fit", fit_runs.list_fits(user), SELECTED, _label, "No fits yet: start one above.")


def _act(user: User, action: str, run_id: str) -> None:
    """Button callback: stop or delete through the library; a refusal is shown on the next run."""
    try:
        getattr(fit_runs, action)(user, run_id)
    except (ReflectError, OSError) as exc:
        st.session_state[ERROR] = f"Could not {action} fit {run_id}: {exc}"


def _progress(run: fit_runs.FitRun) -> None:
    p = run.progress
    if run.state == "completed":
        st.progress(1.0, text="done")
    elif run.state == "running":
        fraction = min(p.done / p.total, 1.0) if p.total else 0.0
        st.progress(fraction, text=f"{p.phase}: {p.done:,}/{p.total:,}" if p.total else (p.phase or "starting"))
    if run.started:
        seconds = int((run.ended or time.time()) - run.started)
        text = f"Elapsed {seconds // 60}:{seconds % 60:02d}"
        if run.state == "running" and p.heartbeat:
            text += f" · runner alive {time.time() - p.heartbeat:.0f} s ago"
        st.caption(text)


def render_fit_run(run: fit_runs.FitRun, user: User) -> None:
    show = {"failed": st.error, "damaged": st.error, "completed": st.success, "stopped": st.warning}.get(
        run.state, st.markdown)
    show(f"**{run.state}**" + (f": {run.error}" if run.error else ""))
    _progress(run)
    if error := st.session_state.pop(ERROR, None):
        st.error(error)
    if run.requested:
        st.caption("Stop requested; the fit ends at its next step.")
    elif "stop" in run.actions:
        st.button("Stop", key=f"fit_stop_{run.run_id}", on_click=_act, args=(user, "stop", run.run_id),
                  help="End the fit now; nothing is kept of it but its log.")
    else:
        st.button("Delete", key=f"fit_delete_{run.run_id}", on_click=_act, args=(user, "delete", run.run_id),
                  help="Remove this fit and its files (a copy saved to the history stays).")
    if run.progress.log_tail:
        st.code("\n".join(run.progress.log_tail[-10:]), language=None)


@st.fragment(run_every=POLL_SECONDS)
def render_fit_monitor(run_id: str, state_when_drawn: str, user: User) -> None:
    """Polls one fit; when its state changes the whole page reruns, so the results follow."""
    try:
        run = fit_runs.get(user, run_id)
    except NotFound:  # deleted meanwhile (in another tab)
        st.rerun()
    if run.state != state_when_drawn:
        st.rerun()
    render_fit_run(run, user)
