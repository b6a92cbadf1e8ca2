"""Settings: model presets, session-only keys, Ollama and OpenAI-compatible servers, local GGUF."""

import streamlit as st

from ui.settings import page

st.set_page_config(page_title="Settings · RLM Tracer", page_icon="⚙️", layout="wide")
st.title("Settings")
page.render()
