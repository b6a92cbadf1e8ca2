"""Learn: a guided walkthrough of a recorded RLM run, step by step, in plain words."""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app.py` puts the repo root on sys.path; a page run on its own (AppTest) does not
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ui.learn import page, questions  # noqa: E402

st.set_page_config(page_title="Learn · RLM Tracer", page_icon="🎓", layout="wide")
page.render()
questions.render()
