"""The Compare page: two runs side by side, their first divergence, and every aligned pair of
nodes (`/Compare?a=<run>&b=<run>`). Run and node texts go to st.code and dataframe cells only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from rlm_core.analysis import views
from rlm_core.analysis.compare import FIELDS, Comparison, Pair, compare_runs, summary, value
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import Node, RunSummary
from ui.common import cost_text, root_of, store, when
from ui.safe import md, word
from ui.widgets import explorer_button, page_link, status_badge

COMPARE_PAGE = "pages/4_Compare.py"
RUN_CHOICES = 500
TEXT_LIMIT = 100_000
PREVIEW_CHARS = 100
KEYS = {"a": "compare_a", "b": "compare_b"}


def compare_link(a: str, b: str) -> None:
    """A link to this page for two runs (used by the Runs page)."""
    params = {"a": a, "b": b}
    url = "/Compare?" + urlencode(params)
    page_link(COMPARE_PAGE, "Compare these two runs", url, params, icon="⚖️")


# ---- picking the two runs --------------------------------------------------------------------


def _label(run: RunSummary) -> str:
    question = " ".join(str(run.question or "").split())
    question = question if len(question) <= 60 else question[:59] + "…"
    # the id keeps labels unique: a selectbox's state is its label, and a fork shares its
    # parent's question and, often, its minute
    status = status_badge(run.status)
    return f"{when(run.created_at)} · {status} · {question} · {run.run_id}"


def _parent(s: TraceStore, run_id: str) -> str | None:
    """The run a fork was made from, if it is still stored."""
    root = s.node(run_id)
    forked = root.meta.get("forked_from") if root is not None else None
    parent = forked.get("run_id") if isinstance(forked, dict) else None
    return str(parent) if parent and s.get_run(str(parent)) is not None else None


def _defaults(s: TraceStore, labels: dict[str, str]) -> tuple[str, str]:
    """Each from the URL if stored; else b is the newest run other than a, and a is b's parent
    when b is a fork, else the newest run other than b."""
    a, b = st.query_params.get("a"), st.query_params.get("b")
    if b not in labels:
        b = next((r for r in labels if r != a), next(iter(labels)))
    if a not in labels:
        a = _parent(s, b) or next((r for r in labels if r != b), b)
    return str(a), b


def _changed(side: str) -> None:
    st.query_params[side] = st.session_state[KEYS[side]]


def _pick(s: TraceStore) -> tuple[str, str] | None:
    runs = s.list_runs(limit=RUN_CHOICES)
    if len(runs) < 2:
        st.info(
            "Comparing needs two runs. Start or import another one, or fork a run in the Explorer."
        )
        return None
    labels = {str(r.run_id): _label(r) for r in runs}
    for side in ("a", "b"):  # a run named in the URL may be older than the listed ones
        wanted = st.query_params.get(side)
        if wanted and wanted not in labels and (found := s.get_run(wanted)) is not None:
            labels[wanted] = _label(found)
    a, b = _defaults(s, labels)
    left, right = st.columns(2)
    for col, side, current in ((left, "a", a), (right, "b", b)):
        st.session_state[KEYS[side]] = current
        col.selectbox(
            f"Run {side.upper()}",
            list(labels),
            format_func=labels.__getitem__,
            key=KEYS[side],
            on_change=_changed,
            args=(side,),
        )
        st.query_params[side] = current
        with col:
            explorer_button(f"Open run {side.upper()} in the Explorer", current)
    return a, b


# ---- rendering -------------------------------------------------------------------------------


def _full_nodes(s: TraceStore, run_id: str) -> list[Node]:
    # comparing previews would call two texts the same when they differ past the preview
    return [(s.node(n.node_id) or n) if n.meta.get("blobs") else n for n in s.nodes(run_id)]


def _cell(v: Any, name: str) -> str:
    if v is None:
        return "unknown" if name in ("tokens", "cost (USD)", "time (s)") else "—"
    if name == "cost (USD)":
        return cost_text(v)
    if name == "status":
        return status_badge(str(v))
    if name == "answer":
        return views.clip(" ".join(str(v).split()), 300).text
    return f"{v:,}" if isinstance(v, int) else str(v)


def _summary(run_a: RunSummary, run_b: RunSummary) -> None:
    rows = [
        {
            "": r["measure"],
            "Run A": _cell(r["left"], r["measure"]),
            "Run B": _cell(r["right"], r["measure"]),
            "differs": "≠" if r["differs"] else "",
        }
        for r in summary(run_a, run_b)
    ]
    st.dataframe(rows, hide_index=True, width="stretch", key="compare_summary")


def _where(pair: Pair) -> str:
    # built from numbers and kind names only, but it goes into markdown: keep it that way
    return word(pair.where, limit=500)


def field_text(node: Node | None, field: str) -> str:
    if node is None:
        return "(no counterpart in this run)"
    raw = value(node, field)
    if field == "context_spans":
        return json.dumps(raw)
    return "" if raw is None else str(raw)


def _main_field(pair: Pair) -> tuple[str, str]:
    """(shown name, attribute) of the field to preview: the first that differs, else the first."""
    fields = FIELDS.get(pair.kind, (("text", "output"),))
    for shown, attr in fields:
        if shown in pair.differences:
            return shown, attr
    return fields[0]


def _divergence(cmp: Comparison) -> None:
    pair = cmp.divergence
    if pair is None:
        st.success("No divergence: every aligned step did the same (tokens and time may differ).")
        return
    kind = word(pair.kind)
    if pair.matched:
        what = "differs in " + ", ".join(pair.differences)
    else:
        what = f"only in run {'A' if pair.left is not None else 'B'}"
    st.warning(f"**First divergence:** {_where(pair)} ({kind}) — {what}.")
    _side_by_side(pair, _main_field(pair))


def _side_by_side(pair: Pair, field: tuple[str, str]) -> None:
    shown, attr = field
    for col, side, node in zip(st.columns(2), "AB", (pair.left, pair.right), strict=True):
        with col:
            st.caption(f"Run {side} · {shown}")
            text = views.clip(field_text(node, attr), TEXT_LIMIT)
            st.code(
                text.text or "(empty)",
                language="python" if attr == "code" else None,
                wrap_lines=True,
            )
            if text.clipped:
                st.caption(f"showing the first {TEXT_LIMIT:,} of {text.total:,} chars")


def _preview(pair: Pair, node: Node | None) -> str:
    if node is None:
        return "—"
    flat = " ".join(field_text(node, _main_field(pair)[1]).split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _pairs(cmp: Comparison) -> None:
    rows = [
        {
            "#": i + 1,
            "where": p.where,
            "kind": p.kind,
            "Run A": _preview(p, p.left),
            "Run B": _preview(p, p.right),
            "": "same" if p.same else "different" if p.matched else "unmatched",
        }
        for i, p in enumerate(cmp.pairs)
    ]
    st.dataframe(rows, hide_index=True, width="stretch", key="compare_pairs")
    i = st.selectbox(
        "Show one pair in full",
        range(len(cmp.pairs)),
        index=cmp.first_divergence or 0,
        format_func=lambda k: f"{k + 1}. {_where(cmp.pairs[k])}",
        key="compare_pick",
    )
    pair = cmp.pairs[int(i or 0)]
    for shown, attr in FIELDS.get(pair.kind, ()):
        same = pair.matched and shown not in pair.differences
        st.markdown(f"**{shown}** — {'same' if same else 'different'}")
        _side_by_side(pair, (shown, attr))


def render() -> None:
    try:
        s = store()
    except StoreBusy as exc:
        st.error(f"{md(exc)} Close the other program and reload.")
        return
    picked = _pick(s)
    if picked is None:
        return
    a, b = picked
    if a == b:
        st.info("Pick two different runs.")
        return
    run_a, run_b = s.get_run(a) or RunSummary(run_id=a), s.get_run(b) or RunSummary(run_id=b)
    # two big runs take a second or two: say what is happening instead of an empty page
    with st.status("Reading run A…") as progress:
        nodes_a = _full_nodes(s, a)
        progress.update(label=f"Reading run B ({len(nodes_a):,} nodes in run A)…")
        nodes_b = _full_nodes(s, b)
        progress.update(label=f"Aligning {len(nodes_a):,} and {len(nodes_b):,} nodes…")
        cmp = compare_runs(nodes_a, nodes_b)
        progress.update(
            label=f"Compared {len(nodes_a):,} and {len(nodes_b):,} nodes", state="complete"
        )
    for side, nodes, other in (("B", nodes_b, a), ("A", nodes_a, b)):
        root = root_of(nodes)
        forked = root.meta.get("forked_from") if root is not None else None
        if isinstance(forked, dict):
            parent = ("run A" if side == "B" else "run B") if forked.get("run_id") == other else ""
            st.caption(f"Run {side} is a fork of {parent or 'another run'}.")
    _divergence(cmp)
    st.subheader("Summary")
    _summary(run_a, run_b)
    st.subheader(f"Aligned steps ({len(cmp.pairs)})")
    _pairs(cmp)
