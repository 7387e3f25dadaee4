"""Import a bundle or a JSON export into the user's history."""

from __future__ import annotations

import streamlit as st

from reflect_core.accounts import rate_limit
from reflect_core.accounts.access import User
from reflect_core.accounts.limits import LimitError, check_upload_size
from reflect_core.store.importer import import_bundle, import_json
from reflect_core.uploads import UploadError

from .session import current_limits, rate_limit_per_minute

DONE = "history_import_done"
IMPORTED = "history_imported"  # the last import's message, shown after the rerun that lists it


def render_import(user: User) -> None:
    if done := st.session_state.pop(IMPORTED, None):
        st.success(done)
    with st.expander("Import a bundle or JSON export"):
        upload = st.file_uploader(
            "Bundle (.zip from this app) or JSON (a record of this app, or a pyreflect-interface export)",
            type=["zip", "json"], key="history_import")
        if upload is None or st.session_state.get(DONE) == upload.file_id:
            return
        st.session_state[DONE] = upload.file_id  # once per file, not on every rerun
        limits = current_limits()
        try:
            check_upload_size(upload.size, limits, upload.name)
            rate_limit.hit(user.name, "upload", rate_limit_per_minute("upload"))
            data = upload.getvalue()
            if upload.name.lower().endswith(".zip"):
                record = import_bundle(user, upload.name, data, limits.upload_bytes)
            else:
                record = import_json(user, upload.name, data)
        except (UploadError, LimitError, rate_limit.RateLimitError) as exc:
            st.error(f"Not imported: {exc}")
            return
        st.session_state[IMPORTED] = f"Imported as '{record['name']}' ({record['kind']})."
        st.rerun()  # the table above is drawn already: a rerun shows the new record in it
