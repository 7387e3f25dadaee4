"""Entry point: page config, the deployment check, login, navigation and the shared sidebar."""

import sys

import streamlit as st

st.set_page_config(page_title="Reflectometry ML", page_icon="🧲", layout="wide")
# Said before the imports below: on a cold start they take seconds, and the browser would show only grey shapes.
loading = st.empty()
if "reflect_core.physics.warmup" not in sys.modules:  # the server's first run: nothing imported yet
    loading.caption(":material/hourglass_top: Starting: loading the numerical libraries (a few seconds on the "
                    "first visit after the server starts)…")

from reflect_core.base.errors import ReflectError  # noqa: E402
from reflect_core.physics.warmup import start_warmup  # noqa: E402
from ui.persistence import render_persistence_notice, start_persistence  # noqa: E402
from ui.session import load_deployment, require_user  # noqa: E402
from ui.sidebar import render_engine_status  # noqa: E402

loading.empty()
start_warmup()  # numba kernels compile in a child process; pages use their numpy twins until they load
start_persistence()  # restore saved work before the login file is read: it may bring back users who signed up
try:
    # Unreadable secrets, an invalid REFLECT_MODE, shared mode without a login file, an unsafe login
    # file: the app stays closed. It never falls back to single-user mode, where everyone is an admin.
    deployment = load_deployment()
except ReflectError as exc:
    st.error(f"The app is closed until its configuration is fixed: {exc}")
    st.stop()
render_persistence_notice(deployment.mode)  # every page, the login page too
require_user(deployment)  # stops here until someone logs in, in shared mode

pages = [
    st.Page("app_pages/explorer.py", title="Film explorer", icon=":material/show_chart:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/models.py", title="Models and data", icon=":material/deployed_code:"),
    st.Page("app_pages/analyse.py", title="Analyse", icon=":material/query_stats:"),
    st.Page("app_pages/history.py", title="History", icon=":material/history:"),
]
navigation = st.navigation(pages)
render_engine_status(deployment.mode)
navigation.run()
