"""The Explorer's node table: the accessible alternative to the graph, and its search. Filtered
and paged in SQL (`TraceStore.table_page`), one page of rows at a time.

Selecting a row selects that node (its groups in the graph open around it). Widget keys carry
the run id so filters, page and row selection of one run never leak into another.
"""

from __future__ import annotations

import zlib

import streamlit as st

from rlm_core.analysis import views
from rlm_core.analysis.outline import Outline
from rlm_core.store.light import TableFilter
from rlm_core.store.trace_store import TraceStore

SEEN_KEY = "explorer_table_seen"
PAGE_ROWS = 100

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


def show(s: TraceStore, run_id: str, outline: Outline) -> str | None:
    """Draw filters, one page of the table and its pager; return a node id when the user has
    just picked a row."""
    st.subheader("Node table")
    nodes = outline.by_id.values()
    kind_col, depth_col, status_col, text_col, page_col = st.columns([2, 1, 2, 3, 1])
    kinds = kind_col.multiselect(
        "Kind", sorted({n.kind for n in nodes}), key=filter_key(run_id, "kind")
    )
    depths = depth_col.multiselect(
        "Depth", sorted({n.depth for n in nodes}), key=filter_key(run_id, "depth")
    )
    statuses = status_col.multiselect(
        "Status",
        sorted({n.status for n in nodes}),
        key=filter_key(run_id, "status"),
    )
    text = text_col.text_input(
        "Text contains",
        key=filter_key(run_id, "text"),
        placeholder="search inputs, outputs, code, errors, ids",
    )
    where = TableFilter(tuple(kinds), tuple(depths), tuple(statuses), text)
    # one pager per filter: a new filter starts at page 1 without the script writing a widget
    pager = filter_key(run_id, f"page_{zlib.crc32(repr(where).encode())}")
    page_no = page_col.number_input("Page", min_value=1, value=1, step=1, key=pager)
    page = s.table_page(run_id, where, PAGE_ROWS, (int(page_no) - 1) * PAGE_ROWS)
    pages = max(1, -(-page.total // PAGE_ROWS))
    first = page.offset + 1
    st.caption(
        f"{page.total:,} of {len(outline.order):,} nodes match · rows {first:,}–"
        f"{page.offset + len(page.rows):,} (page {page.offset // PAGE_ROWS + 1} of {pages:,}) · "
        "select a row to inspect that node"
    )
    rows = [_row(r) for r in page.rows]
    event = st.dataframe(
        rows,
        key=table_key(run_id),
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config=_COLUMNS,
    )
    return _picked(run_id, event, rows)


def _row(r: dict[str, object]) -> dict[str, object]:
    tokens_in, tokens_out = r["tokens_in"], r["tokens_out"]
    tokens = None
    if tokens_in is not None or tokens_out is not None:
        tokens = int(tokens_in or 0) + int(tokens_out or 0)  # type: ignore[call-overload]
    latency = r["latency_s"]
    return {
        "step": r["step"],
        "kind": r["kind"],
        "depth": r["depth"],
        "status": r["status"],
        "model": r["model"] or "",
        "tokens": tokens,
        "cost_usd": r["cost_usd"],
        "latency_s": None if latency is None else round(float(latency), 3),  # type: ignore[arg-type]
        "preview": views.one_line(str(r["preview"] or "")),
        "node_id": r["node_id"],
    }


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
