"""The Explorer's node table: the accessible alternative to the graph, filterable, one row per node.

Selecting a row selects that node. Widget keys carry the run id so filters and the row
selection of one run never leak into another.
"""

from __future__ import annotations

import streamlit as st

from rlm_core.analysis import views
from rlm_core.types import Node

SEEN_KEY = "explorer_table_seen"

_COLUMNS = {
    "step": st.column_config.NumberColumn("Step", width="small"),
    "kind": st.column_config.TextColumn("Kind", width="small"),
    "depth": st.column_config.NumberColumn("Depth", width="small"),
    "status": st.column_config.TextColumn("Status", width="small"),
    "model": st.column_config.TextColumn("Model"),
    "tokens": st.column_config.NumberColumn("Tokens", format="%d"),
    "cost_usd": st.column_config.NumberColumn("Cost ($)", format="%.5f"),
    "latency_s": st.column_config.NumberColumn("Latency (s)", format="%.2f"),
    "preview": st.column_config.TextColumn("Preview", width="large"),
    "node_id": st.column_config.TextColumn("Node id"),
}


def table_key(run_id: str) -> str:
    return f"explorer_table_{run_id}"


def filter_key(run_id: str, name: str) -> str:
    return f"explorer_f_{name}_{run_id}"


def show(run_id: str, nodes: list[Node]) -> str | None:
    """Draw filters and table; return a node id when the user has just picked a row."""
    st.subheader("Node table")
    rows = views.node_table_rows(nodes)
    kind_col, depth_col, status_col, text_col = st.columns([2, 1, 2, 3])
    kinds = kind_col.multiselect(
        "Kind", sorted({r["kind"] for r in rows}), key=filter_key(run_id, "kind")
    )
    depths = depth_col.multiselect(
        "Depth", sorted({r["depth"] for r in rows}), key=filter_key(run_id, "depth")
    )
    statuses = status_col.multiselect(
        "Status", sorted({r["status"] for r in rows}), key=filter_key(run_id, "status")
    )
    text = text_col.text_input(
        "Text contains", key=filter_key(run_id, "text"), placeholder="search inputs and outputs"
    )
    shown = views.filter_rows(rows, kinds=kinds, depths=depths, statuses=statuses, text=text)
    st.caption(f"{len(shown):,} of {len(rows):,} nodes · select a row to inspect that node")
    columns = views.table_columns(rows)
    event = st.dataframe(
        [{c: r[c] for c in columns} for r in shown],
        key=table_key(run_id),
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config=_COLUMNS,
    )
    return _picked(run_id, event, shown)


def _picked(run_id: str, event: object, shown: list[dict[str, object]]) -> str | None:
    """A row counts as picked only when the selection changed: the widget keeps it across runs
    while the user moves on with the graph or the step buttons."""
    selection = getattr(event, "selection", None)
    rows = list(getattr(selection, "rows", []) or [])
    before = st.session_state.get(SEEN_KEY)
    st.session_state[SEEN_KEY] = (run_id, rows)
    if before == (run_id, rows) or not rows or rows[0] >= len(shown):
        return None
    return str(shown[rows[0]]["node_id"])
