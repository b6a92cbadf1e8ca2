"""The Explorer's inspector column: everything one node holds, shown as plain text.

Node texts come from documents and models (untrusted): they go into st.code / st.text / st.json
only, never into markdown or labels. Long texts are cut for display and offered as a download.
"""

from __future__ import annotations

import streamlit as st

from rlm_core.analysis import timing, views
from rlm_core.analysis.insight import SUB_CALL_KINDS
from rlm_core.engine import prompts
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunSummary
from ui.common import cost_text, flat_context, full_node
from ui.explorer import cost_panels
from ui.safe import word
from ui.widgets import Select, node_buttons, show_text, status_badge

SLICE_MARGIN = 300
MAX_SLICES = 5


def _stats_line(node: Node) -> str:
    tokens = "unknown"
    if node.tokens_in is not None or node.tokens_out is not None:
        tokens = f"{node.tokens_in or 0:,} in / {node.tokens_out or 0:,} out"
    latency = "—" if node.latency_s is None else f"{node.latency_s:.2f} s"
    prompt = timing.prompt_line(node) if node.kind == "lm" else None
    return (
        f"kind: {node.kind} · status: {status_badge(node.status)} · depth {node.depth}\n"
        f"model: {node.model or '—'}\n"
        f"tokens: {tokens} · cost: {cost_text(node.cost_usd)} · latency: {latency}"
    ) + (f"\n{prompt}" if prompt else "")


def show_node(
    store: TraceStore, run: RunSummary, nodes: list[Node], preview: Node, select: Select
) -> None:
    """The inspector for one node: common facts, then what its kind holds."""
    node = full_node(store, preview)
    order = views.step_order(nodes)
    st.subheader(views.node_label(node, views.step_index(order, node.node_id) + 1))
    st.text(_stats_line(node))
    st.text(f"node id {node.node_id}")
    _node_facts(nodes, node, select)
    if node.error:
        st.error("This node ended with an error:")
        show_text(node.error, key=f"{node.node_id}_error")
    shown = {
        "lm": _lm,
        "code": _code,
        "llm_query": _sub_call,
        "rlm_query": _sub_call,
        "run": _run,
        "final": _final,
    }.get(node.kind)
    if shown is None:
        st.info("This kind of node has nothing more to show.")
        return
    shown(store, run, nodes, node, select)


def _node_facts(nodes: list[Node], node: Node, select: Select) -> None:
    """Rollup of the node's subtree and, for a sub-call, where its answer went."""
    if node.kind in SUB_CALL_KINDS:
        _where_used(nodes, node, select)
    cost_panels.node_rollup(nodes, node)


def _where_used(nodes: list[Node], node: Node, select: Select) -> None:
    st.markdown("**Where its answer went**")
    finals = [
        f for f in nodes if f.kind == "final" and node.node_id in (f.meta.get("sources") or [])
    ]
    cells = [
        c.node_id
        for c in nodes
        if c.kind == "code"
        and any(node.node_id in ids for ids in (c.meta.get("assignments") or {}).values())
    ]
    used = node.meta.get("used_by")
    if isinstance(used, list) and used:
        st.text("into the variable(s): " + ", ".join(word(v) for v in used))
    elif used == [] and not finals:
        st.warning("Dropped: its answer never reached a variable or the final answer.")
    elif used is None and node.status == "ok":
        st.caption("Not recorded for this call (an older or imported trace).")
    if finals:
        st.text("and into the final answer")
    node_buttons([*cells, *(f.node_id for f in finals)], nodes, select, key=f"used_{node.node_id}")


def _jump(label: str, target: str | None, nodes: list[Node], select: Select, key: str) -> None:
    if target and any(n.node_id == target for n in nodes):
        st.button(label, key=key, on_click=select, args=(target,))


# ---- lm ------------------------------------------------------------------------------------


def _full_lm_nodes(store: TraceStore, nodes: list[Node], node: Node) -> list[Node]:
    """This RLM's lm calls up to `node`, read with their inputs (`nodes` is the outline)."""
    earlier = [n.node_id for n in views.session_lm_nodes(nodes, node) if n.node_id != node.node_id]
    return [*store.full_nodes(node.run_id, earlier), node]


def _lm(store: TraceStore, run: RunSummary, nodes: list[Node], node: Node, sel: Select) -> None:
    messages = views.lm_messages(_full_lm_nodes(store, nodes, node), node)
    before = node.meta.get("messages_before")
    new_from = before if isinstance(before, int) else 0
    st.markdown(f"**Messages sent ({len(messages)})** — as the model saw them")
    st.caption(f"Messages {new_from + 1}–{len(messages)} were added for this call.")
    if took_back := node.meta.get("took_back"):
        st.caption(
            f"Before this call the engine took back the model's last {took_back} replies, "
            "refused guesses, and what it was told about them: a small model copies them."
        )
    engine_turn = node.meta.get("engine_turn")
    session = store.node(node.parent_id) if node.parent_id else None
    examples = prompts.worked_example_positions(str((session or node).meta.get("prompt")))
    for i, message in enumerate(messages):
        role = word(message.get("role", "?"))
        text = views.message_text(message)
        label = f"{i + 1}. {role} · {len(text):,} chars"
        if i in examples:
            label += " · worked example (part of the small-model prompt)"
        elif i == engine_turn:
            label += " · written by the engine: the search it ran for the model"
        with st.expander(label, expanded=i >= new_from and i not in examples):
            show_text(text, key=f"{node.node_id}_msg{i}")
    st.markdown("**Response**")
    show_text(node.output, key=f"{node.node_id}_response", empty="(no response)")


# ---- code ----------------------------------------------------------------------------------


def _code(store: TraceStore, run: RunSummary, nodes: list[Node], node: Node, sel: Select) -> None:
    if node.meta.get("timed_out"):
        st.warning("This cell ran past its time limit and was interrupted.")
    if node.meta.get("restarted"):
        st.warning("The REPL worker died or was killed during this cell and was restarted.")
    if node.meta.get("ran_for_model"):
        st.info(
            "The engine wrote and ran this search, not the model: it had answered with a refused "
            "guess twice in a row instead of running the search it was handed."
        )
    st.markdown("**Code**")
    show_text(node.code, key=f"{node.node_id}_code", language="python")
    full, seen = st.columns(2)
    with full:
        st.markdown("**Full stdout**")
        total = node.meta.get("stdout_chars")
        if isinstance(total, int) and total > len(node.stdout or ""):
            st.caption(f"the cell printed {total:,} chars; the capture kept the first part")
        show_text(node.stdout, key=f"{node.node_id}_stdout")
    with seen:
        st.markdown("**What the model saw**")
        show_text(node.model_view, key=f"{node.node_id}_view")
    if node.stderr:
        st.markdown("**stderr**")
        show_text(node.stderr, key=f"{node.node_id}_stderr")
    variables = node.meta.get("variables") or {}
    st.markdown(f"**Variables after the cell ({len(variables)})**")
    if variables:
        st.dataframe(
            [{"name": k, "value": v} for k, v in variables.items()],
            hide_index=True,
            key=f"vars_{node.node_id}",
        )
    if node.context_spans:
        st.markdown("**Context this cell read**")
        _positions(store, run, node)


# ---- sub-calls -----------------------------------------------------------------------------


def _positions(store: TraceStore, run: RunSummary, node: Node) -> None:
    flat = flat_context(store, run)
    if flat is None:
        st.info("The stored context of this run is not available, so positions cannot be shown.")
        return
    text, offsets = flat
    lines = views.describe_spans(node.context_spans, len(text), offsets)
    st.text("\n".join(lines))
    for i, (start, end) in enumerate(node.context_spans[:MAX_SLICES]):
        before, middle, after = views.slice_with_margin(text, start, end, SLICE_MARGIN)
        with st.expander(f"Slice {i + 1}: chars {start:,}–{end:,}", expanded=i == 0):
            st.caption(f"…{len(before):,} chars before")
            st.text(before)
            st.caption("the slice")
            show_text(middle, key=f"{node.node_id}_slice{i}")
            st.caption(f"{len(after):,} chars after…")
            st.text(after)
    if len(node.context_spans) > MAX_SLICES:
        st.caption(f"{len(node.context_spans) - MAX_SLICES} more range(s) not shown")


def _sub_call(
    store: TraceStore, run: RunSummary, nodes: list[Node], node: Node, select: Select
) -> None:
    if node.meta.get("batch") is not None:
        idx, size = node.meta.get("batch_index"), node.meta.get("batch_size")
        st.caption(f"item {word(idx)} of a batch of {word(size)} calls run concurrently")
    if node.meta.get("fallback_from"):
        st.caption("asked rlm_query at the maximum depth, so it became one sub-model call")
    st.markdown("**Slice of the document it saw**")
    notes = views.ambiguity_notes(node, run.context_chars or 0)
    if node.context_spans:
        _positions(store, run, node)
    elif not notes:
        st.info("No part of the original context was found verbatim in what this call saw.")
    for note in notes[:MAX_SLICES]:
        st.warning(note)
    label = "Prompt" if node.kind == "llm_query" else "Question / prompt for the child RLM"
    st.markdown(f"**{label}**")
    show_text(node.input, key=f"{node.node_id}_prompt")
    st.markdown("**Passed upward**")
    show_text(node.output, key=f"{node.node_id}_answer", empty="(nothing yet)")
    _jump("Open the child run", node.meta.get("child_run"), nodes, select, f"child_{node.node_id}")


# ---- run and final -------------------------------------------------------------------------


def _run(store: TraceStore, run: RunSummary, nodes: list[Node], node: Node, sel: Select) -> None:
    meta = node.meta
    st.markdown("**Question**")
    show_text(node.input, key=f"{node.node_id}_question")
    st.markdown("**Answer**")
    show_text(node.output, key=f"{node.node_id}_output", empty="(no answer)")
    facts = {
        "root model": meta.get("root_model"),
        "sub model": meta.get("sub_model"),
        "prompt": meta.get("prompt"),
        "prompt chosen by": meta.get("prompt_reason"),
        "context": meta.get("context_shape") or meta.get("context_kind"),
        "iterations": meta.get("iterations"),
        "limit": meta.get("limit"),
        "OTLP export": meta.get("otlp"),
    }
    st.json({k: v for k, v in facts.items() if v is not None}, expanded=True)
    st.json({"where the time went": timing.where_time_went(nodes)}, expanded=False)
    if meta.get("config"):
        with st.expander("Configuration"):
            st.json(meta["config"])


def _final(
    store: TraceStore, run: RunSummary, nodes: list[Node], node: Node, select: Select
) -> None:
    var = node.meta.get("var")
    st.text(f"returned with FINAL_VAR({var!r})" if var else "returned with FINAL(...)")
    st.markdown("**Answer**")
    show_text(node.output, key=f"{node.node_id}_final")
    _jump(
        "Go to the cell that ended the run",
        node.meta.get("from_node"),
        nodes,
        select,
        f"from_{node.node_id}",
    )
