"""The sidebar every page shares: the deployment mode, and what this installation has and lacks
(the facts of ``python -m reflect_core doctor``, folded away)."""

from __future__ import annotations

import streamlit as st

from reflect_core.doctor import Check, run_checks

from .config import app_config
from .session import current_user

MODE_LABELS = {"local": "local: single user, no login", "shared": "shared: login required"}
ICONS = {"ok": ":material/check_circle:", "warning": ":material/warning:",
         "missing": ":material/radio_button_unchecked:", "error": ":material/error:"}
# What any signed-in visitor of a shared app may read. The settings, login file, data folder, disk and
# the Hub repos (names, last errors) describe the server, for its admins only; whether work is kept
# is on every page for everyone (ui.persistence).
VISITOR_FACTS = ("Python", "torch", "Numerical kernels", "pyreflect", "Modal GPUs")
FACTS_TTL_S = 60


@st.cache_data(ttl=FACTS_TTL_S, show_spinner=False)
def installation_facts(config: dict) -> list[Check]:
    """The doctor's checks, at most a minute old: they scan the installed packages (~60 ms) and write
    a probe file, too much for every rerun of every session. The app read ``config`` already (it
    stays closed when it cannot), so the settings check is ok by construction."""
    return run_checks(config, Check("Settings", "ok", "Streamlit secrets and the environment"))


def _markdown(text: str) -> str:
    """Literal text for st.markdown: "$" (a bcrypt "$2b$", a price) must not become LaTeX, nor "__" in a
    path (``__pycache__``) bold; inside `code` spans nothing is special."""
    parts = text.split("`")
    parts[::2] = [part.replace("$", r"\$").replace("_", r"\_") for part in parts[::2]]
    return "`".join(parts)


def render_engine_status(mode: str | None = None) -> None:
    if mode:
        st.sidebar.caption(f"Mode (REFLECT_MODE): {MODE_LABELS.get(mode, mode)}")
    checks = installation_facts(app_config())
    if not current_user().is_admin:
        checks = [c for c in checks if c.name in VISITOR_FACTS]
    notes = sum(c.status in ("warning", "error") for c in checks)
    with st.sidebar.expander("This installation" + (f" ({notes} to look at)" if notes else ""), expanded=False):
        for check in checks:
            st.markdown(f"{ICONS[check.status]} **{check.name}**: {_markdown(check.found)}")
            if check.status != "ok" and check.action:
                st.caption(_markdown(f"→ {check.action}"))
        st.caption("The same list in a terminal: `python -m reflect_core doctor`")
