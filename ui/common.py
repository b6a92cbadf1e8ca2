"""What every page shares: the one store of this server process, live runs, formatting."""

from __future__ import annotations

import re
import time
from typing import Any

import streamlit as st

from rlm_core.errors import DiskFull
from rlm_core.store.trace_store import StoreBusy, TraceStore
from ui.runs import RunManager

ROOT_PRESETS = [
    "demo/root",
    "demo/recursive",
    "openai/gpt-5-mini",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "ollama_chat/qwen2.5-coder",
]
SUB_PRESETS = [
    "demo/sub",
    "openai/gpt-5-nano",
    "openai/gpt-4o-mini",
    "anthropic/claude-haiku-4-5",
    "ollama_chat/qwen2.5-coder",
]
CUSTOM = "Other (type a litellm model name)…"
JOURNAL_SYNC_S = 3.0


@st.cache_resource(on_release=lambda store: store.close())
def _open_store() -> TraceStore:
    """The server process owns the DuckDB file (one writer); threads use their own cursors."""
    return TraceStore()


_last_sync = [0.0]


def store() -> TraceStore:
    """The shared store, with journals of CLI runs (which cannot open the database while the
    app holds it) imported at most every few seconds."""
    try:
        s = _open_store()
    except StoreBusy as exc:
        # another app server (or a long command) holds the file: say so instead of crashing
        st.error(f"{esc(exc)} Close the other RLM Tracer app, or set RLM_TRACES_DIR elsewhere.")
        st.stop()
    except DiskFull as exc:
        st.error(esc(exc))
        st.stop()
    shown = st.session_state.get("store_notes_shown", 0)
    for note in s.notes[shown:]:  # what opening it skipped or repaired, once per session
        st.warning(esc(note))
    st.session_state["store_notes_shown"] = len(s.notes)
    if time.monotonic() - _last_sync[0] > JOURNAL_SYNC_S:
        _last_sync[0] = time.monotonic()
        s.import_journals()
    return s


@st.cache_resource
def manager() -> RunManager:
    return RunManager(store())


def cost_text(cost: float | None) -> str:
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" if cost < 100 else f"${cost:,.2f}"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


_MARKDOWN = re.compile(r"([\\`*_\[\]()<>!#|~$:])")
"""The marks that start an image, a link or autolink (`:`), HTML, code, emphasis, a heading, a
quote, a table, LaTeX or a Streamlit directive (`:red[...]`, `:material/...:`)."""


def esc(text: Any) -> str:
    """Untrusted text (documents, model and provider output, file names) made literal for any
    call that renders markdown (st.markdown, st.error, st.caption, widget labels): those marks
    are backslash-escaped (a `![](http://...)` in a file name would load a remote image)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def explorer_link(run_id: str, node_id: str | None = None) -> str:
    query = f"run={run_id}" + (f"&node={node_id}" if node_id else "")
    return f"/Explorer?{query}"


def status_badge(status: str | None) -> str:
    return {
        "ok": "✅ ok",
        "error": "❌ error",
        "limit": "⚠️ limit",
        "interrupted": "⏹️ interrupted",
        "cancelled": "✂️ cancelled",
        "running": "⏳ running",
    }.get(status or "", status or "?")
