"""Compare: two runs side by side, where they first diverged, and every aligned step."""

import streamlit as st

from ui.runs import compare

st.set_page_config(page_title="Compare · RLM Tracer", page_icon="⚖️", layout="wide")
st.title("Compare runs")
compare.render()
