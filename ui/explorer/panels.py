"""The Explorer's insight panels under the graph (one at a time, so only the open one computes):
Document, Coverage, Where is X?, Timeline, Budget, Health.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import altair as alt
import streamlit as st

from rlm_core.analysis.insight import SUB_CALL_KINDS, coverage, where_is
from rlm_core.analysis.lint import lint
from rlm_core.engine.spans import merge_spans
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunSummary
from ui import document_view
from ui.common import context_text
from ui.explorer import cost_panels
from ui.safe import word
from ui.widgets import Select, node_buttons

_log = logging.getLogger(__name__)

PANELS = ("Inspector only", "Document", "Coverage", "Where is X?", "Timeline", "Budget", "Health")
PANEL_KEY = "explorer_panel"
NEEDLES_KEY = "insight_needles"
"""The "Where is X?" strings typed in this session: the Health panel checks them as needles."""
MAX_SEGMENTS = 400
"""Coverage bars drawn at most; more segments are merged into bins."""
SHOWN_HITS = 10
STATE_ORDER = {"never": 0, "code": 1, "model": 2}
STATE_COLOURS = {"model": "#f2b600", "code": "#5b9bd5", "never": "#d9d9d9"}


@st.cache_resource(max_entries=2, show_spinner="Reading every node of the run…")
def _all_nodes(
    _store: TraceStore, traces_dir: str, run_id: str, state: tuple[Any, ...]
) -> list[Node]:
    return _store.nodes(run_id)


def full_nodes(store: TraceStore, run: RunSummary) -> list[Node]:
    """Every node of the run with its stored texts and ranges: what the panels read. Read when a
    panel is open, kept while the run does not change (a running run's is read each time)."""
    if run.status == "running":
        return store.nodes(str(run.run_id))
    state = (run.status, run.ended_at, run.created_at)
    return _all_nodes(store, str(store.dir), str(run.run_id), state)


# ---- the panel picker ----------------------------------------------------------------------


def show(
    store: TraceStore,
    run: RunSummary,
    load: Callable[[], list[Node]],
    current: Node,
    select: Select,
) -> None:
    """The panel picker and the chosen panel; `load` reads the run's nodes, only when a panel
    needs them (the graph, inspector and table work from the outline)."""
    choice = st.radio("Panel", PANELS, horizontal=True, key=PANEL_KEY)
    panels: dict[str, Callable[[list[Node]], None]] = {
        "Document": lambda nodes: _document(store, run, nodes, current.node_id),
        "Coverage": lambda nodes: _coverage(store, run, nodes, select),
        "Where is X?": lambda nodes: _where(store, run, nodes, select),
        "Timeline": lambda nodes: cost_panels.timeline(nodes, current.node_id, select),
        "Budget": lambda nodes: cost_panels.budget_panel(nodes, select),
        "Health": lambda nodes: _health(store, run, nodes, select),
    }
    panel = panels.get(str(choice))
    if panel is None:
        return
    try:
        panel(load())
    except Exception:  # odd stored data: a message here, the traceback in the log
        _log.exception("panel %s failed", choice)
        st.error("This panel could not be shown for this run.")


def _need_text(store: TraceStore, run: RunSummary) -> str | None:
    text = context_text(store, run)
    if text is None:
        st.info("The stored context of this run is not available.")
    return text


# ---- document ------------------------------------------------------------------------------


def _document(store: TraceStore, run: RunSummary, nodes: list[Node], node_id: str) -> None:
    text = _need_text(store, run)
    if text is None:
        return
    node = next(n for n in nodes if n.node_id == node_id)
    marked, shown = document_view.ranges_of(node, nodes)
    empty = {
        "lm": "No document text had been printed to the root model before this call.",
        "final": "No sub-call answer with a place in the context reached this answer.",
    }.get(node.kind, "This node did not read any part of the context.")
    document_view.show(text, marked, shown=shown, key=node.node_id, empty=empty)


# ---- coverage ------------------------------------------------------------------------------


def coverage_bins(
    segments: list[dict[str, Any]], total: int, cap: int = MAX_SEGMENTS
) -> list[dict[str, Any]]:
    """At most `cap` bars. Past the cap, equal bins: each shows the most-read class inside it
    (so a small read range stays visible) and carries the share of each class for the tooltip."""
    if len(segments) <= cap or total <= 0:
        return [s | {"model": 0.0, "code": 0.0, "never": 0.0, s["state"]: 1.0} for s in segments]
    width = -(-total // cap)
    bins: list[dict[str, Any]] = []
    i = 0
    for lo in range(0, total, width):
        hi = min(total, lo + width)
        share = {"model": 0, "code": 0, "never": 0}
        while i < len(segments) and segments[i]["start"] < hi:
            s = segments[i]
            share[s["state"]] += min(hi, s["end"]) - max(lo, s["start"])
            if s["end"] > hi:
                break
            i += 1
        state = max((k for k, v in share.items() if v), key=STATE_ORDER.__getitem__)
        row = {"start": lo, "end": hi, "state": state}
        row |= {k: v / (hi - lo) for k, v in share.items()}
        if (
            bins
            and bins[-1]["state"] == state
            and all(bins[-1][k] in (0.0, 1.0) and row[k] == bins[-1][k] for k in share)
        ):
            bins[-1]["end"] = hi  # identical pure bins join: fewer marks
        else:
            bins.append(row)
    return bins


def touching(nodes: Sequence[Node], lo: int, hi: int) -> dict[str, list[str]]:
    """Nodes whose ranges overlap [lo, hi): sub-calls that saw it, cells that printed or read it."""

    def hits(spans: Sequence[Sequence[int]]) -> bool:
        return any(s < hi and lo < e for s, e in spans)

    return {
        "seen by a model call": [
            n.node_id for n in nodes if n.kind in SUB_CALL_KINDS and hits(n.context_spans)
        ],
        "printed to the root model": [
            n.node_id for n in nodes if n.kind == "code" and hits(n.meta.get("shown_spans") or [])
        ],
        "read by code": [n.node_id for n in nodes if n.kind == "code" and hits(n.context_spans)],
    }


def _coverage(store: TraceStore, run: RunSummary, nodes: list[Node], select: Select) -> None:
    text = _need_text(store, run)
    if text is None:
        return
    total, run_id = len(text), str(run.run_id)
    segments = coverage(nodes, total)
    amount = {
        k: sum(s["end"] - s["start"] for s in segments if s["state"] == k) for k in STATE_ORDER
    }
    cols = st.columns(3)
    for col, (state, label) in zip(
        cols,
        [("model", "Seen by a model"), ("code", "Read by code only"), ("never", "Never read")],
        strict=True,
    ):
        col.metric(
            label,
            f"{100 * amount[state] / max(1, total):.1f}%",
            f"{amount[state]:,} chars",
            delta_color="off",
            delta_arrow="off",
        )
    bins = coverage_bins(segments, total)
    pick = alt.selection_point(name="pick", fields=["start"], on="click")
    chart = (
        alt.Chart(alt.Data(values=bins))
        .mark_bar(height=28)
        .encode(
            x=alt.X("start:Q", title="character position", scale=alt.Scale(domain=[0, total])),
            x2="end:Q",
            color=alt.Color(
                "state:N",
                title="read by",
                scale=alt.Scale(domain=list(STATE_COLOURS), range=list(STATE_COLOURS.values())),
                legend=alt.Legend(orient="bottom", direction="horizontal"),
            ),
            tooltip=[
                "start:Q",
                "end:Q",
                "state:N",
                alt.Tooltip("model:Q", format=".0%"),
                alt.Tooltip("code:Q", format=".0%"),
            ],
        )
        .add_params(pick)
        .properties(height=60)
    )
    pos_key, seen_key = f"coverage_pos_{run_id}", f"coverage_seen_{run_id}"
    event = st.altair_chart(chart, on_select="rerun", key=f"coverage_chart_{run_id}")
    picked = _picked_start(event)
    if picked is not None and picked != st.session_state.get(seen_key):
        st.session_state[pos_key] = max(0, min(total - 1, picked))
    st.session_state[seen_key] = picked
    if len(segments) > MAX_SEGMENTS:
        st.caption(
            f"{len(segments):,} segments drawn as {len(bins)} bins: a bin shows the most-read "
            "class inside it; hover for the shares"
        )
    pos = int(
        st.number_input(
            "Jump to character (or click the strip)", 0, max(0, total - 1), key=pos_key, step=1_000
        )
    )
    model = merge_spans(
        [
            *(s for n in nodes if n.kind in SUB_CALL_KINDS for s in n.context_spans),
            *(s for n in nodes if n.kind == "code" for s in n.meta.get("shown_spans") or []),
        ]
    )
    code = merge_spans(s for n in nodes if n.kind == "code" for s in n.context_spans)
    lo, hi = document_view.show_at(text, pos, model=model, code=code, radius=600)
    for role, ids in touching(nodes, lo, hi).items():
        st.caption(f"{role}: {len(ids)} node(s)")
        node_buttons(ids, nodes, select, key=f"cov_{role[:4]}")


def _picked_start(event: Any) -> int | None:
    selection = getattr(event, "selection", None) or {}
    points = selection.get("pick") if hasattr(selection, "get") else None
    if isinstance(points, list) and points and isinstance(points[0], dict):
        value = points[0].get("start")
        return int(value) if isinstance(value, int | float) else None
    return None


# ---- where is X ----------------------------------------------------------------------------


def _remember(needle: str) -> None:
    needles: list[str] = st.session_state.setdefault(NEEDLES_KEY, [])
    if needle and needle not in needles:
        needles.append(needle)


def _where(store: TraceStore, run: RunSummary, nodes: list[Node], select: Select) -> None:
    text = _need_text(store, run)
    if text is None:
        return
    needle = st.text_input(
        "Where is X? Type a piece of text from the document", key=f"where_{run.run_id}"
    )
    if not needle:
        st.caption("Every occurrence is listed with the nodes that saw it.")
        return
    _remember(needle)
    hits = where_is(text, needle, nodes)
    if not hits:
        st.info("This text does not occur in the context.")
        return
    seen = [h for h in hits if h["seen_by_model"] or h["shown_to_root"]]
    more = "+" if len(hits) >= 200 else ""
    st.text(f"{len(hits)}{more} occurrence(s); {len(seen)} of them seen by a model call.")
    if not seen:
        st.error(
            "No model call ever saw this text: no sub-call prompt held it and no cell printed it "
            "to the root model. This is why the needle was missed."
            + (" Code did read it." if any(h["read_by_code"] for h in hits) else "")
        )
    for i, hit in enumerate(hits[:SHOWN_HITS]):
        start, end = hit["start"], hit["end"]
        with st.container(border=True):
            st.text(f"occurrence {i + 1}: chars {start:,}–{end:,} of {len(text):,}")
            lo, hi = document_view.window(start, end, len(text), radius=200)
            st.html(document_view.window_html(text, lo, hi, [(start, end, "focus")]))
            for role, ids in (
                ("seen by a model call", hit["seen_by_model"]),
                ("printed to the root model", hit["shown_to_root"]),
                ("read by code", hit["read_by_code"]),
                (
                    "maybe seen by a model call (same text, place unknown)",
                    hit["maybe_seen_by_model"],
                ),
            ):
                st.caption(f"{role}: {len(ids)} node(s)" + ("" if ids else " — none"))
                node_buttons(ids, nodes, select, key=f"where_{i}_{role[:4]}")
    if len(hits) > SHOWN_HITS:
        st.caption(f"{len(hits) - SHOWN_HITS} more occurrence(s) not shown")


# ---- health --------------------------------------------------------------------------------

_SEVERITY = {"error": "🔴 error", "warning": "🟠 warning", "info": "🔵 info"}


def _health(store: TraceStore, run: RunSummary, nodes: list[Node], select: Select) -> None:
    needles = list(st.session_state.get(NEEDLES_KEY) or [])
    text = context_text(store, run) if needles else None
    with st.spinner("Checking the run…"):  # the first check loads litellm's model table
        findings = lint(nodes, needles, text)
    st.caption(
        "Patterns that usually mean the answer deserves less trust or budget was wasted. "
        f"Needles checked: the {len(needles)} text(s) you looked up with Where is X?."
    )
    if not findings:
        st.success("No findings for this run.")
        return
    for i, f in enumerate(findings):
        with st.container(border=True):
            st.markdown(f"**{_SEVERITY.get(f.severity, f.severity)}** · `{word(f.rule)}`")
            st.text(f.message)  # may quote model errors or typed needles: plain text only
            node_buttons(f.node_ids, nodes, select, key=f"health_{i}")
