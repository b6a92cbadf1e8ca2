"""What every page shares: the one store of this server process, what pages read through it
beyond its rows (a node's full texts, the run's context as one string), and formatting."""

from __future__ import annotations

import time

import streamlit as st

from rlm_core.context import flatten
from rlm_core.errors import DiskFull
from rlm_core.otel_map import OtlpTarget
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import Node, RunSummary
from ui.safe import md

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
        st.error(f"{md(exc)} Close the other RLM Tracer app, or set RLM_TRACES_DIR elsewhere.")
        st.stop()
    except DiskFull as exc:
        st.error(md(exc))
        st.stop()
    shown = st.session_state.get("store_notes_shown", 0)
    for note in s.notes[shown:]:  # what opening it skipped or repaired, once per session
        st.warning(md(note))
    st.session_state["store_notes_shown"] = len(s.notes)
    if time.monotonic() - _last_sync[0] > JOURNAL_SYNC_S:
        _last_sync[0] = time.monotonic()
        s.import_journals()
    return s


# ---- reads beyond the store's rows ---------------------------------------------------------


def full_node(s: TraceStore, preview: Node) -> Node:
    """The node with its big texts read back; the preview (and a notice) if a blob is gone."""
    try:
        node = s.node(preview.node_id)
    except (OSError, ValueError):
        node = None
    if node is None:
        st.error("Some stored text of this node could not be read; showing the stored preview.")
        return preview
    return node


def root_of(nodes: list[Node]) -> Node | None:
    """The run node at the top of a run's tree."""
    return next((n for n in nodes if n.kind == "run" and n.depth == 0), None)


@st.cache_resource(max_entries=2, show_spinner=False)
def _flat_context(
    _store: TraceStore, traces_dir: str, run_id: str, sha: str | None
) -> tuple[str, list[tuple[str, int]]]:
    """The run's context as one string plus part offsets; read once, a context can be 100 MB."""
    context = _store.context(run_id)
    if context is None:
        raise FileNotFoundError(run_id)
    return flatten(context)


def flat_context(s: TraceStore, run: RunSummary) -> tuple[str, list[tuple[str, int]]] | None:
    """(the run's context as one string, where each part of a dict context starts), or None when
    the stored context cannot be read."""
    try:
        return _flat_context(s, str(s.dir), str(run.run_id), run.context_sha)
    except (OSError, ValueError):
        return None


def context_text(s: TraceStore, run: RunSummary) -> str | None:
    """The run's context as one string (cached), or None when it cannot be read."""
    flat = flat_context(s, run)
    return flat[0] if flat is not None else None


# ---- formatting ----------------------------------------------------------------------------


def cost_text(cost: float | None) -> str:
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" if cost < 100 else f"${cost:,.2f}"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


OTLP_ENDPOINT = "otlp_endpoint"


def otlp_target() -> OtlpTarget | None:
    """Where this session's runs also send their spans (Settings), else where the server's
    OTEL_EXPORTER_OTLP_ENDPOINT says; None: nowhere."""
    return OtlpTarget.given(st.session_state.get(OTLP_ENDPOINT) or None)
