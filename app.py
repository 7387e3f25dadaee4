"""Entry point: page config, navigation and the shared sidebar."""

import streamlit as st

from ui.session import require_user
from ui.sidebar import render_engine_status

st.set_page_config(page_title="Reflectometry ML", page_icon="🧲", layout="wide")
require_user()  # stops here until someone logs in, when login is configured

pages = [
    st.Page("app_pages/explorer.py", title="Film explorer", icon=":material/show_chart:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/models.py", title="Models and data", icon=":material/deployed_code:"),
    st.Page("app_pages/history.py", title="History", icon=":material/history:"),
]
navigation = st.navigation(pages)
render_engine_status()
navigation.run()
