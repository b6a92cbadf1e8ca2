"""Explorer: the graph of one run, step-through, and the inspector for the selected node."""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app.py` puts the repo root on sys.path; a page run on its own (AppTest) does not
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ui.explorer.page import render  # noqa: E402

# the sidebar only holds the navigation here: folded, it leaves the width to the graph
st.set_page_config(
    page_title="Explorer · RLM Tracer",
    page_icon="🔎",
    layout="wide",
    initial_sidebar_state="collapsed",
)
render()
