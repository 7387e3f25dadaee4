"""The data of a fit: the user's measured curves (one per contrast), and an upload that goes
through the same checks and storage as on the Models page (size limit, rate limit, the curve
checks of ``uploads.curves``, the quota; an ORSO file of several data sets becomes one curve each)."""

from __future__ import annotations

import streamlit as st

from reflect_core.accounts import rate_limit
from reflect_core.accounts.access import User
from reflect_core.accounts.limits import LimitError, Limits, check_upload_size
from reflect_core.analysis.fit_runs import MAX_CURVES
from reflect_core.base.errors import ReflectError
from reflect_core.formats.curves import Curve
from reflect_core.store import user_curves
from reflect_core.uploads import UploadError
from reflect_core.uploads.curves import validate_curves
from ui.session import rate_limit_per_minute
from ui.state import keep, remembered

CHOSEN = "fit_curves"
SEEN = "fit_seen_uploads"
UPLOAD_NOTE = "fit_upload_note"


def _keep_upload(upload, user: User, limits: Limits) -> None:
    """Check and keep an uploaded curve file once (reruns see the same file again); its curves join the choice."""
    seen = st.session_state.setdefault(SEEN, set())
    if upload is None or upload.file_id in seen:
        return
    seen.add(upload.file_id)
    try:
        check_upload_size(upload.size, limits, upload.name)
        rate_limit.hit(user.name, "upload", rate_limit_per_minute("upload"))
        accepted = validate_curves(upload.name, upload.getvalue(), limits.upload_bytes)
        kept = user_curves.save_curves(user, upload.name, upload.getvalue(), accepted.content, limits=limits)
    except (UploadError, LimitError, rate_limit.RateLimitError, ReflectError, OSError) as exc:
        st.session_state[UPLOAD_NOTE] = ("error", f"Not kept: {exc}")
        return
    st.session_state[UPLOAD_NOTE] = ("success", f"Kept as {', '.join(kept)}: {accepted.description}.")
    keep(CHOSEN, (list(remembered(CHOSEN, [])) + kept)[-MAX_CURVES:])
    st.session_state.pop(CHOSEN, None)  # the selector shows the new choice


def render_data(user: User, limits: Limits) -> list[tuple[str, Curve]]:
    """The chosen curves, (name, curve) in the order chosen; [] with guidance when there are none."""
    with st.expander("Upload a measured curve", expanded=not user_curves.curves(user)):
        upload = st.file_uploader("Text (Q, R, dR[, dQ FWHM] in Å⁻¹) or ORSO .ort", type=["txt", "dat", "csv", "ort"],
                                  key="fit_upload",
                                  help=f"Checked and kept as on the Models page (at most "
                                       f"{limits.upload_bytes / 1e6:,.0f} MB); it stays private to you.")
        _keep_upload(upload, user, limits)
        if note := st.session_state.pop(UPLOAD_NOTE, None):
            getattr(st, note[0])(note[1])
    names = user_curves.curves(user)
    if not names:
        st.info("No measured curves yet. Upload one above (columns Q, R, dR and optionally dQ as FWHM, in Å⁻¹; "
                "or an ORSO .ort file), or on the 'Models and data' page. A fit needs dR: χ² weighs each point "
                "by its uncertainty.")
        return []
    if CHOSEN not in st.session_state:
        st.session_state[CHOSEN] = [n for n in remembered(CHOSEN, names[:1]) if n in names] or names[:1]
    chosen = keep(CHOSEN, st.multiselect(
        "Measured curves (one per contrast)", names, key=CHOSEN, max_selections=MAX_CURVES,
        format_func=lambda name: user_curves.curve_label(user, name),
        help="Several curves are fitted together: one film, its structure shared, each curve with its own "
             "ambient SLD (contrast), scale and background."))
    picked = []
    for name in chosen:
        try:
            curve = user_curves.load_curve(user, name)
        except (ReflectError, OSError) as exc:
            st.error(f"{name} cannot be read: {exc}")
            continue
        extras = [label for label, column in (("dR", curve.dr), ("dQ", curve.dq)) if column is not None]
        st.caption(f"**{user_curves.curve_label(user, name)}**: {curve.q.size} points, "
                   f"Q {curve.q.min():.4g}–{curve.q.max():.4g} Å⁻¹"
                   + (f", with {' and '.join(extras)}" if extras else "")
                   + ("" if curve.dr is not None else " — no dR column: χ² cannot be computed, choose another curve"))
        picked.append((name, curve))
    return picked
