"""Evaluate: RLM vs the plain model on generated tasks with known answers, by context length."""

import streamlit as st

from ui.evaluate import page

st.set_page_config(page_title="Evaluate · RLM Tracer", page_icon="📈", layout="wide")
st.title("Evaluate")
st.caption(
    "Each task is generated at the sizes you pick, with a known answer. Every model answers it "
    "twice: as an RLM, and as a plain model given the whole context (when it fits its window; "
    "otherwise 'did not fit', as in the paper)."
)
page.render()
