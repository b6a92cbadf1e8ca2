"""The graph of a run at its level of detail, shared by the Explorer and the Run page's live view:
the run's outline read and indexed once per state of the run, and the payload of one view of it
(tooltips from the few nodes drawn). The Explorer adds what the user opens, folds and selects.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import streamlit as st

from rlm_core.analysis.graph import SizeBy
from rlm_core.analysis.levels import View, view
from rlm_core.analysis.outline import Outline
from rlm_core.analysis.outline_graph import view_payload
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import RunSummary


@st.cache_resource(max_entries=4, show_spinner=False)
def _indexed(_store: TraceStore, traces_dir: str, run_id: str, state: tuple[Any, ...]) -> Outline:
    return Outline(_store.outline(run_id))


def outline_of(s: TraceStore, run: RunSummary) -> Outline:
    """The run's outline (no texts), indexed. A finished run's is kept (shared by sessions; it
    changes only with the run's status or end), a running run's is read again on every call."""
    if run.status == "running":
        return Outline(s.outline(str(run.run_id)))
    state = (run.status, run.ended_at, run.created_at)
    return _indexed(s, str(s.dir), str(run.run_id), state)


def draw(
    s: TraceStore,
    outline: Outline,
    *,
    opened: Mapping[str, int] | None = None,
    folded: Collection[str] = (),
    selected: str | None = None,
    size_by: SizeBy = "tokens",
    dataflow: bool = True,
) -> tuple[View, dict[str, Any]]:
    """The view (what is drawn) and its vis-network payload."""
    shown = view(outline, opened=opened, folded=folded, selected=selected)
    drawn = [d.id for d in shown.items if d.role == "node"]
    run_id = outline.by_id[outline.order[0]].run_id if outline.order else ""
    payload = view_payload(
        outline,
        shown,
        size_by=size_by,
        selected=selected,
        dataflow=dataflow,
        previews=s.previews(run_id, drawn),
    )
    return shown, payload
