"""The Explorer page: the graph of one run with the inspector beside it, what the page opens on;
step-through, panels and the node table below; the run picker, the run's question, answer,
exports and graph options in the sidebar.

The selected run and node live in the URL (`?run=…&node=…`); the main area is one fragment that
re-reads the store every second while the run is live or a replay plays. It reads the run's
outline (no texts) and draws it at its level of detail; the inspector reads the selected node,
the table one page, a panel what it needs when it is open.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

import streamlit as st

from rlm_core.analysis import views
from rlm_core.analysis.graph import SizeBy
from rlm_core.analysis.levels import view
from rlm_core.analysis.outline import Outline
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import RunSummary
from ui.common import cost_text, store, when
from ui.explorer import export, fork, groups, node_table, panels, steps
from ui.explorer.inspector import show_node
from ui.graph_component import graph
from ui.run_graph import draw, outline_of
from ui.safe import md, word
from ui.widgets import page_link, show_text, status_badge

_log = logging.getLogger(__name__)
RUN_KEY = "explorer_run"
SIZE_KEY = "explorer_size_by"
GROW_KEY = "explorer_grow"
FLOW_KEY = "explorer_dataflow"
GRAPH_KEY = "explorer_graph"
GRAPH_HEIGHT = 570
RUN_CHOICES = 500
LEGEND = (
    "Shape = kind: ⬢ run · ● lm call · ■ code cell · ◆ llm_query · ▲ rlm_query · ★ FINAL; "
    "▸ boxes are groups (a batch of calls, a child run, a block of turns): click to open, "
    "click ▾ to fold. Lighter colours are deeper in the recursion. Border: red error, orange "
    "limit, yellow running, dashed interrupted or cancelled. Dashed edges: data flow. "
    "←/→ or j/k step through the nodes."
)


def render() -> None:
    s = _open_store()
    if s is None:
        return
    runs = s.list_runs(limit=RUN_CHOICES)
    if not runs:
        st.title("Explorer")
        _empty_state()
        return
    title, picker, about, exports, options = st.columns(
        [1, 5, 1.2, 1.2, 1.2], vertical_alignment="center"
    )
    title.markdown("### Explorer")
    with picker:
        run_id = _pick_run(s, runs)
    run = s.get_run(run_id) or RunSummary(run_id=run_id)
    with about, st.popover("Question · answer", use_container_width=True):
        _about(run)
    with exports:
        export.export_menu(s, run_id)
    with options, st.popover("Graph options", use_container_width=True):
        _options()
    timer = steps.timer(run, steps.playing())
    st.fragment(run_every=timer)(_body)(run_id, timer)


def _open_store() -> TraceStore | None:
    try:
        return store()
    except StoreBusy as exc:
        st.error(f"{md(exc)} Close the other program (a CLI run keeps its own trace); reload.")
        return None


def _empty_state() -> None:
    st.info("No runs yet. Start one on the Run page, then come back here to explore it.")
    page_link("app.py", "Go to the Run page", "/", icon="▶️")


# ---- the sidebar: which run, what it is, exports, graph options ----------------------------


def _run_label(run: RunSummary) -> str:
    question = " ".join(str(run.question or "").split())
    question = question if len(question) <= 70 else question[:69] + "…"
    # the id keeps labels unique: the selectbox remembers its choice by label, and a fork
    # usually has its parent's question and minute
    run_id = str(run.run_id)[-6:]
    return f"{when(run.created_at)} · {status_badge(run.status)} · {question} · {run_id}"


def _run_changed() -> None:
    st.query_params["run"] = st.session_state[RUN_KEY]
    st.query_params.pop("node", None)
    steps.stop_playing()


def _pick_run(s: TraceStore, runs: list[RunSummary]) -> str:
    """The run named in the URL if it exists, else the newest; the picker lists newest first."""
    labels = {str(r.run_id): _run_label(r) for r in runs}
    wanted = st.query_params.get("run")
    if wanted and wanted not in labels:
        found = s.get_run(wanted)
        if found is None:
            st.warning("The run in the link is not in this trace store; showing the newest run.")
            st.query_params.pop("node", None)
            wanted = None
        else:
            labels = {wanted: _run_label(found), **labels}
    run_id = wanted or next(iter(labels))
    st.session_state[RUN_KEY] = run_id
    st.selectbox(
        "Run (newest first)",
        list(labels),
        format_func=lambda rid: labels.get(rid, rid),
        key=RUN_KEY,
        on_change=_run_changed,
        label_visibility="collapsed",
    )
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id
    return run_id


def _about(run: RunSummary) -> None:
    st.text(
        f"root model: {run.root_model or '—'}\nsub model: {run.sub_model or '—'}\n"
        f"run id {run.run_id}"
    )
    with st.expander("Question"):
        show_text(run.question, key=f"{run.run_id}_q")
    with st.expander("Answer", expanded=run.status == "ok"):
        show_text(run.answer, key=f"{run.run_id}_a", empty="(no answer yet)")
    if run.limit_name:
        st.warning(f"The run stopped at a limit: {word(run.limit_name)}.")
    if run.error and run.status != "ok":
        with st.expander("⚠️ The run ended with an error", expanded=True):
            show_text(run.error, key=f"{run.run_id}_err")


def _options() -> None:
    st.radio("Size nodes by", ["tokens", "cost"], key=SIZE_KEY, horizontal=True)
    st.toggle(
        "Data flow",
        value=True,
        key=FLOW_KEY,
        help="Dashed edges: sub-call answer → variable in a cell → FINAL",
    )
    hint = "Off: show every node. On: only the nodes that had started by this step."
    st.toggle("Grow the graph to the current step", key=GROW_KEY, help=hint)


# ---- the fragment: facts, step controls, graph | inspector, panels, table ------------------


def _facts(run: RunSummary, prompt: Any = None) -> str:
    tokens = (run.tokens_in or 0) + (run.tokens_out or 0)
    start, end = run.created_at, run.ended_at
    if end is None and run.status == "running":
        end = time.time()
    seconds = f"{(end or start) - start:.1f} s" if start else "—"
    live = " · still running: the graph grows as its nodes arrive"
    live = live if run.status == "running" else ""
    return (
        f"{status_badge(run.status)} · {run.iterations or 0} iterations · "
        f"{run.llm_calls or 0:,} model calls · {tokens:,} tokens · {cost_text(run.cost_usd)} · "
        f"{seconds}{' · prompt: ' + word(prompt) if prompt else ''}{live}"
    )


def _body(run_id: str, timer: float | None) -> None:
    s = store()  # also imports the journals of CLI runs every few seconds
    run = s.get_run(run_id)
    outline = outline_of(s, run) if run is not None else None
    if run is None or outline is None or not outline.order:
        st.error("This run has no recorded nodes in the trace store.")
        return
    order = outline.order
    st.session_state[steps.ORDER_KEY] = order
    current = _apply_graph_event(outline, run_id, steps.current(order))
    if steps.playing():
        current = steps.advance(order, current)
    if steps.timer(run, steps.playing()) != timer:
        st.rerun()  # the fragment's timer is set when it is defined: start, change or drop it
    st.caption(_facts(run, outline.by_id[order[0]].meta.get("prompt")))
    fork.origin(list(outline.by_id.values()))
    controls = st.container()
    left, right = st.columns([5, 3], gap="small")
    panel_box, table_box = st.container(), st.container()
    # drawn out of order: a row picked in the table at the bottom changes the selection that
    # the step controls, the graph, the inspector and the panel above it must show in this run
    with table_box:
        picked = node_table.show(s, run_id, outline)
    if picked and picked in outline.by_id and picked != current:
        steps.select(picked)
        steps.stop_playing()
        current = picked
    with controls:
        steps.controls(order, current)
    with left:
        _graph(s, run_id, outline, current)
    with panel_box:
        panels.show(s, run, lambda: panels.full_nodes(s, run), outline.by_id[current], steps.select)
    with right, st.container(height=GRAPH_HEIGHT + 60, border=False):
        nodes = list(outline.by_id.values())
        try:
            show_node(s, run, nodes, outline.by_id[current], steps.select)
            groups.fold_buttons(outline, run_id, current)
            fork.show(s, run, outline.by_id[current])
        except Exception:  # odd stored or imported data: a message here, the traceback in the log
            _log.exception("inspector failed for node %s", current)
            st.error("This node could not be shown: its stored data is not in the expected shape.")


def _graph_event() -> tuple[str | None, int | None]:
    """The click or key step the graph sent for this run. The component delivers it through
    session state before it is drawn, so reading it first lets the graph, the step controls and
    the inspector all show the new selection in this same run (no second run per click)."""
    state = st.session_state.get(GRAPH_KEY)
    get = getattr(state, "get", None)
    if get is None:
        return None, None
    clicked, step = get("node_click"), get("step")
    return (
        str(clicked) if clicked is not None else None,
        int(step) if isinstance(step, int | float) and step in (-1, 1) else None,
    )


def _apply_graph_event(outline: Outline, run_id: str, current: str) -> str:
    clicked, step = _graph_event()
    if clicked is not None and groups.is_group(clicked):
        opened, folded = groups.state(run_id)
        shown = view(outline, opened=opened, folded=folded, selected=current)
        target = groups.clicked(outline, shown, run_id, clicked, current)
    elif clicked is not None and clicked != current and clicked in outline.by_id:
        target = clicked
    elif step is not None:
        target = steps.step_from(outline.order, current, step)
    else:
        return current
    steps.select(target)
    steps.stop_playing()
    return target


def _graph(s: TraceStore, run_id: str, outline: Outline, current: str) -> None:
    if st.session_state.get(GROW_KEY) or steps.playing():
        outline = Outline(views.nodes_up_to(outline.by_id.values(), current))
    opened, folded = groups.state(run_id)
    size_by: SizeBy = "cost" if st.session_state.get(SIZE_KEY) == "cost" else "tokens"
    shown, payload = draw(
        s,
        outline,
        opened=opened,
        folded=folded,
        selected=current,
        size_by=size_by,
        dataflow=bool(st.session_state.get(FLOW_KEY, True)),
    )
    # the returned click/step were already applied by _apply_graph_event
    graph(
        payload,
        key=GRAPH_KEY,
        height=GRAPH_HEIGHT,
        selected=payload["selected"],
        fit_token=zlib.crc32(run_id.encode()) + groups.fit_token(),
    )
    drawn = sum(1 for d in shown.items if d.role == "node")
    note, button = st.columns([4, 1], vertical_alignment="center")
    note.caption(f"{drawn:,} of {len(outline.order):,} nodes drawn one by one. {LEGEND}")
    with button:
        groups.overview_button(run_id)
