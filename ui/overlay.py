"""A measured curve over the explorer's film: choose one of the user's curves, draw it with its error
bars, and say how well the film explains it (χ² with the explorer's scale and background, and with
the best ones, and the verdict on consistency)."""

from __future__ import annotations

import streamlit as st

from reflect_core.accounts.access import User
from reflect_core.analysis.measured import agreement, film_at_data
from reflect_core.analysis.verdicts import fit_verdict
from reflect_core.base.errors import ReflectError
from reflect_core.formats.curves import Curve
from reflect_core.physics.film import Film
from reflect_core.store import user_curves
from ui.state import keep, remembered, seed
from ui.verdict import show_verdict

KEY = "explorer_overlay"
_PARSED = "explorer_overlay_parsed"  # {name: Curve}: each stored file is read once per session
_LABELS = "explorer_overlay_labels"  # {name: label}: read once per session, not on every edit


def chosen_overlay(user: User) -> tuple[list[str], Curve | None]:
    """The user's curve names and the one chosen in the selector (None: none chosen or unreadable, said
    here). Read before the selector is drawn, so the charts can go to the browser first."""
    names = user_curves.curves(user)
    if remembered(KEY) not in names:
        keep(KEY, None)
    seed(KEY, None)
    if st.session_state[KEY] not in names:  # deleted since it was chosen
        st.session_state[KEY] = None
    name = keep(KEY, st.session_state[KEY])
    if name is None:
        return names, None
    parsed = st.session_state.setdefault(_PARSED, {})
    if name not in parsed:
        try:
            parsed[name] = user_curves.load_curve(user, name)
        except (ReflectError, OSError) as exc:
            st.error(f"{name} cannot be overlaid: {exc}")
            return names, None
    return names, parsed[name]


def overlay_selector(user: User, names: list[str]) -> None:
    if not names:
        st.caption("To overlay a measured curve and see its χ² against this film, upload one on the "
                   "'Models and data' page.")
        return
    keep(KEY, st.selectbox("Overlay a measured curve", names, index=None, key=KEY, placeholder="none: the film alone",
                           format_func=lambda n: _label(user, n),
                           help="Its points with error bars on the chart, and how well this film explains them "
                                "(χ² at the data's own Q points and resolution)."))


def forget_labels() -> None:
    """After a curve is renamed or deleted: the labels are read again."""
    st.session_state.pop(_LABELS, None)


def _label(user: User, name: str) -> str:
    labels = st.session_state.setdefault(_LABELS, {})
    if name not in labels:
        labels[name] = user_curves.curve_label(user, name)
    return labels[name]


def render_agreement(film: Film, curve: Curve, dq: float, scale: float, background: float) -> None:
    """χ² of the film against the data, as set and with the best scale and background, and the verdict."""
    try:
        fit = agreement(curve, film_at_data(film, curve, dq, scale, background))
    except (ReflectError, ValueError) as exc:
        st.warning(f"This film cannot be compared with the curve: {exc}")
        return
    if fit["chi2_reduced"] is not None:
        st.caption(f"Against {fit['points_with_dr']} data points with dR: reduced χ² {fit['chi2_reduced']:.3g} with "
                   f"this scale and background; median |Δlog₁₀R| {fit['median_decades']:.3f} decades.")
    show_verdict(fit_verdict(fit))
