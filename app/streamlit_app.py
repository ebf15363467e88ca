"""The app's frame: page setup, navigation and the state every page shares. Each page lives in
``app_pages/``.

Run it with ``recommender app`` or ``streamlit run app/streamlit_app.py``: both bind 127.0.0.1 and
limit uploads to 20 MB (``app/.streamlit/config.toml``, read from any working folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `app` is a folder next to the package, not an installed package: make `from app import ui`
# work however the script is started (streamlit run, AppTest, another working directory).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import state, ui  # noqa: E402

st.set_page_config(page_title="Fine-tuning recommender", page_icon=":material/tune:", layout="wide")

PAGES = [
    st.Page("app_pages/recommend.py", title="Recommend", icon=":material/recommend:", default=True),
    st.Page("app_pages/search.py", title="Search", icon=":material/manage_search:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/query_stats:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
]

state.keep_widgets()  # what was entered on one page is there on the next
ui.start_warmup()  # fit the meta-model, calibrate, compute meta-features: once per server, off this thread
page = st.navigation(PAGES)
with st.sidebar:
    st.caption("How to fine-tune a language model for your task under your budgets: full, multi-task or "
               "parameter-efficient. Predictions come from measured runs; a search verifies them.")
page.run()
