"""Runs: the history of every traced run; search, filter, open, rename, tag, delete."""

import streamlit as st

from ui.runs import page

st.set_page_config(page_title="Runs · RLM Tracer", page_icon="📜", layout="wide")
st.title("Runs")
page.render()
