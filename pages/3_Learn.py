"""Learn: a guided walkthrough of a recorded RLM run, step by step, in plain words."""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app.py` puts the repo root on sys.path; a page run on its own (AppTest) does not
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ui import learn_questions  # noqa: E402
from ui.learn_page import render  # noqa: E402

st.set_page_config(page_title="Learn · RLM Tracer", page_icon="🎓", layout="wide")
render()
learn_questions.render()
