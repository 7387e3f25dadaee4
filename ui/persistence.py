"""Whether this deployment keeps its work across restarts, for every page: the state mirror
(``reflect_core.store.mirror``) restored before the first page renders, and one line saying
where the work is kept, or that it is lost when the app restarts."""

from __future__ import annotations

import time

import streamlit as st

from reflect_core.accounts.auth_config import AUTH_SETTING, MODE_SETTING, public_host, resolve_mode
from reflect_core.base.errors import ReflectError
from reflect_core.store import mirror

from .config import app_config

LOST_AT_RESTART = ("Work here is not kept: this shared app has no Hub repo for its state, so runs, models, "
                   "uploads, history and new accounts are lost when the app restarts or goes to sleep. "
                   f"The deployer can set HF_TOKEN and {mirror.STATE_SETTING} (or HF_REPO_ID) to keep them.")


def _settings(mode: str) -> mirror.MirrorSettings | None:
    return mirror.mirror_settings(app_config(), mode)


def _mode() -> str | None:
    """The deployment mode as app.py will resolve it, without reading the login file (which the
    restore may bring back); None when the settings are broken (the app stays closed anyway)."""
    try:
        config = app_config()
        login = config.get(AUTH_SETTING) or config.get("auth_config")
        return resolve_mode(config.get(MODE_SETTING), login, public_host(config))
    except ReflectError:
        return None


@st.cache_resource(show_spinner=False)
def _started(mode: str) -> str | None:
    """Once per server process: restore, then the background sync. What went wrong, or None."""
    try:
        settings = _settings(mode)
    except ReflectError as exc:
        return str(exc)
    if settings is not None:
        try:
            mirror.start(settings)
        except Exception as exc:  # noqa: BLE001 - the app must open even if the mirror cannot start
            return f"the state mirror could not start ({type(exc).__name__}: {exc})"
    return None


def start_persistence(mode: str | None = None) -> None:
    """Restore the saved state and start mirroring it (once per process; later calls return at once).
    Call it before the login file is read: the restore may add users who signed up before a restart."""
    mode = mode or _mode()
    if mode is None:
        return
    if mirror.current() is None:  # the first page of this process (or no mirror: then it returns at once)
        with st.spinner("Restoring saved work from the Hub …"):
            _started(mode)


def _ago(when: float | None) -> str:
    if when is None:
        return "not saved yet"
    seconds = max(0, int(time.time() - when))
    return f"last saved {seconds} s ago" if seconds < 120 else f"last saved {seconds // 60} min ago"


def render_persistence_notice(mode: str) -> None:
    """One line on every page: where the work is kept, a problem with that, or (shared, no Hub repo)
    that it is lost at a restart. Nothing in local mode without a mirror. A shared app shows this
    before login, so it names neither the repo nor the error there (mirror_status() has both)."""
    problem = _started(mode)
    status = mirror.mirror_status()
    local = mode == "local"
    if problem or status["error"]:
        detail = f" ({problem or status['error']})" if local else ""
        # A setting (or a start) that failed is not tried again by this server: only the mirror's own errors are.
        then = "until the settings are fixed and the app restarts" if problem else "and saving is retried every minute"
        st.warning(f"Work is not being saved to the Hub right now{detail}: it is kept on this server until it "
                   f"restarts, {then}.", icon=":material/cloud_off:")
    elif status["configured"]:
        where = f"the Hub dataset {status['repo']}" if local else "a private Hub dataset"
        st.caption(f":material/cloud_done: Your work is kept in {where} ({_ago(status['last_sync'])}).")
    elif mode == "shared":
        st.warning(LOST_AT_RESTART, icon=":material/warning:")
    if local and status.get("conflicts"):
        st.caption(f"{len(status['conflicts'])} file(s) changed both here and on the Hub; this machine's versions "
                   "were kept and the Hub's copies are in the data folder's .mirror/conflicts.")
