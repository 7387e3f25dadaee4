"""Live view of the user's training jobs: state, progress, losses, log, controls.

Polled with ``st.fragment(run_every=...)``: each poll also advances the queue and
detects dead workers (``jobs.tick``), so the page needs no background thread. The page
reads local run files only; ``tick`` asks a remote backend at most once per its poll
interval however many tabs poll, so a poll here costs a few file reads.
"""

from __future__ import annotations

import time

import streamlit as st

from reflect_core import jobs
from reflect_core.accounts.access import User
from reflect_core.base.errors import NotFound, ReflectError
from reflect_core.store import records
from reflect_core.viz.figures import loss_figure
from ui.session import configured_hub, current_limits
from ui.state import choose_newest_first

POLL_SECONDS = 2.0
SELECTED = "train_selected_run"
ACTION_LABELS = {"cancel": "Cancel", "pause": "Pause", "resume": "Resume", "stop": "Stop", "retry": "Retry",
                 "delete": "Delete"}
ACTION_HELP = {
    "cancel": "Remove from the queue before it starts.",
    "pause": "Save a checkpoint now and stop; Resume continues exactly from it.",
    "resume": "Continue from the last checkpoint, with the same data, split and optimizer state.",
    "stop": "End now without a checkpoint (the generated data is kept for Retry).",
    "retry": "Run the same spec again from the start, reusing the generated data.",
    "delete": "Remove this run and all its files.",
}


def _label(run: jobs.RunInfo) -> str:
    # No state in the label: the selector is drawn once per page run, the state changes under it.
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
    return f"{run.name or run.run_id} · {when}"


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _progress(run: jobs.RunInfo) -> None:
    p = run.progress
    if run.state == "queued":
        st.info(f"Queued: position {run.queue_position} (at most {jobs.max_concurrent_jobs()} job(s) run at once).")
        return
    if run.state == "completed":
        st.progress(1.0, text="done")
    elif p.total:
        fraction = min(p.done / p.total, 1.0)
        # p.epoch counts finished epochs; the one under way is the next, counted from 1 as everywhere.
        current = min(p.epoch + 1, p.epochs_total) if run.state == "running" else p.epoch
        st.progress(fraction, text=f"{p.phase}: {p.done:,}/{p.total:,}"
                    + (f" · epoch {current} of {p.epochs_total}" if p.epochs_total else ""))
    elif p.phase:
        st.progress(0.0, text=p.phase)
    if run.started:
        now = time.time()
        text = f"Compute time {_duration(run.compute_seconds(now))}" + (
            f" over {run.attempts} attempts" if run.attempts > 1 else "")
        left = run.seconds_left(now)
        if left is not None:
            text += f" · about {_duration(left)} left in {p.phase}"
        if run.state == "running" and p.heartbeat:
            text += f" · last heartbeat {time.time() - p.heartbeat:.0f} s ago"
        st.caption(text)


def _controls(run: jobs.RunInfo, user: User) -> None:
    actions = [a for a in ACTION_LABELS if a in run.actions]
    if run.requested:
        st.caption(f"{run.requested.capitalize()} requested; the worker acts at the next batch.")
    confirming = f"confirm_delete_{run.run_id}"
    if st.session_state.get(confirming):  # Delete asks first, as History does: the files go for good
        _confirm_delete(run, user, confirming)
        return
    row = st.container(horizontal=True)  # side by side, each as wide as its label
    for action in actions:
        if row.button(ACTION_LABELS[action], key=f"{action}_{run.run_id}", help=ACTION_HELP[action]):
            try:
                if action == "delete":
                    st.session_state[confirming] = True
                elif action in ("resume", "retry"):  # queued again: the limits hold, as at submit
                    getattr(jobs, action)(run.run_id, user=user, limits=current_limits())
                else:
                    getattr(jobs, action)(run.run_id, user=user)
                st.rerun()
            except ReflectError as exc:  # refused, over a limit, not yours, damaged
                st.error(str(exc))


def _confirm_delete(run: jobs.RunInfo, user: User, confirming: str) -> None:
    st.warning(f"Delete run '{run.name or run.run_id}' with its model, checkpoints, data and history record"
               + (" (and its copy on the Hub)" if configured_hub()[0] else "") + "? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key=f"delete_yes_{run.run_id}", type="primary"):
        st.session_state.pop(confirming, None)
        try:
            # the run, its history record and its Hub copy (a message when that one remains)
            if hub_left := records.delete_run(user, run.run_id, hub=configured_hub()[0]):
                st.warning(hub_left)
            st.session_state.pop(SELECTED, None)
            st.rerun()
        except ReflectError as exc:
            st.error(str(exc))
    if no.button("Keep it", key=f"delete_no_{run.run_id}"):
        st.session_state.pop(confirming, None)
        st.rerun()


def render_run(run: jobs.RunInfo, user: User) -> None:
    state_line = {"failed": st.error, "completed": st.success, "stopped": st.warning, "cancelled": st.warning,
                  "paused": st.info, jobs.DAMAGED: st.error}.get(run.state)
    message = f"**{run.state}**" + (f": {run.error}" if run.error else "")
    (state_line or st.markdown)(message)
    _progress(run)
    _controls(run, user)
    p = run.progress
    if p.train_loss and run.state != "completed":  # a completed run's results below draw its losses
        st.plotly_chart(loss_figure(p.train_loss, p.val_loss), key=f"loss_{run.run_id}")
    if p.log_tail:
        st.code("\n".join(p.log_tail[-12:]), language=None)


def choose_run(user: User) -> jobs.RunInfo | None:
    """The run selector (newest first; an admin sees everyone's); None when there are no runs."""
    jobs.tick()
    runs = sorted(jobs.runs_for(user), key=lambda r: r.created, reverse=True)
    return choose_newest_first("Run", runs, SELECTED, _label, "No training runs yet: submit one above.")


@st.fragment(run_every=POLL_SECONDS)
def render_monitor(run_id: str, state_when_drawn: str, user: User) -> None:
    """Polls one run; when its state changes, the whole page reruns so results and
    the run list follow."""
    jobs.tick()
    try:
        run = jobs.get(run_id, user=user)
    except NotFound:  # deleted meanwhile (in another tab)
        st.rerun()
    if run.state != state_when_drawn:
        st.rerun()
    render_run(run, user)
