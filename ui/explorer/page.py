"""The Explorer page: pick a run, see its graph, step through its nodes, inspect one of them.

The selected run and node live in the URL (`?run=…&node=…`); everything below the run picker
is one fragment that re-reads the store every second while the run is live or a replay plays.
"""

from __future__ import annotations

import logging
import time
import zlib

import streamlit as st

from rlm_core.analysis import views
from rlm_core.analysis.graph import SizeBy, vis_payload
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import Node, RunSummary
from ui.common import cost_text, store, when
from ui.explorer import export, fork, node_table, panels
from ui.explorer.inspector import show_node
from ui.graph_component import graph
from ui.safe import word
from ui.widgets import page_link, show_text, status_badge

_log = logging.getLogger(__name__)
RUN_KEY = "explorer_run"
STEP_KEY = "explorer_step"
SIZE_KEY = "explorer_size_by"
GROW_KEY = "explorer_grow"
PLAY_KEY = "explorer_playing"
PLAYED_AT_KEY = "explorer_played_at"
ORDER_KEY = "explorer_order"
GRAPH_KEY = "explorer_graph"
LIVE_EVERY_S = 1.0
PLAY_EVERY_S = 0.8
GRAPH_HEIGHT = 620
RUN_CHOICES = 500
LEGEND = (
    "Shape = kind: ⬢ run · ● lm call · ■ code cell · ◆ llm_query · ▲ rlm_query · ★ FINAL. "
    "Lighter colours are deeper in the recursion. Border: red error, orange limit, "
    "yellow running, dashed interrupted. ←/→ or j/k step through the nodes."
)


def render() -> None:
    st.title("Explorer")
    s = _open_store()
    if s is None:
        return
    runs = s.list_runs(limit=RUN_CHOICES)
    if not runs:
        _empty_state()
        return
    run_id = _pick_run(s, runs)
    run = s.get_run(run_id) or RunSummary(run_id=run_id)
    playing = bool(st.session_state.get(PLAY_KEY))
    timer = _timer(run, playing)
    st.fragment(run_every=timer)(_body)(run_id, timer)


def _open_store() -> TraceStore | None:
    try:
        return store()
    except StoreBusy as exc:
        st.error(f"{exc} Close the other program (a CLI run keeps its own trace) and reload.")
        return None


def _empty_state() -> None:
    st.info("No runs yet. Start one on the Run page, then come back here to explore it.")
    page_link("app.py", "Go to the Run page", "/", icon="▶️")


# ---- run and node selection (kept in the URL) ----------------------------------------------


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
    st.session_state[PLAY_KEY] = False


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
    )
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id
    return run_id


def select(node_id: str) -> None:
    """Select a node (also the callback of jump buttons); the URL keeps it for links."""
    st.query_params["node"] = node_id


def _stop_playing() -> None:
    st.session_state[PLAY_KEY] = False


def _current(order: list[str]) -> str:
    wanted = st.query_params.get("node")
    if wanted in set(order):
        return str(wanted)
    if wanted:
        st.warning("The node in the link is not part of this run; showing its first step.")
    select(order[0])
    return order[0]


def _step_to(where: str) -> None:
    order: list[str] = st.session_state.get(ORDER_KEY) or []
    if not order:
        return
    i = views.step_index(order, st.query_params.get("node"))
    j = {"first": 0, "prev": i - 1, "next": i + 1, "last": len(order) - 1}[where]
    select(order[max(0, min(j, len(order) - 1))])
    _stop_playing()


def step_key(step: int) -> str:
    """The slider's key at a step: a new slider per position (see `_slider_moved`)."""
    return f"{STEP_KEY}_{step}"


def _slider_moved(key: str) -> None:
    """The user dragged the slider. Why one slider per position: a rerun can carry a value the
    browser held before the last run's output reached it (measured during Play: the value of one
    run earlier). For a slider the script moves, Streamlit takes that stale value for the user
    moving it; this stopped Play after a few steps, jumping back one. A slider born at the current
    step has no older value, and a late report from the slider of an earlier step is ignored."""
    order: list[str] = st.session_state.get(ORDER_KEY) or []
    shown = views.step_index(order, st.query_params.get("node")) + 1
    if key != step_key(shown):
        return
    step = int(st.session_state.get(key) or shown)
    if order:
        select(order[max(0, min(step, len(order)) - 1)])
    _stop_playing()


def _toggle_play() -> None:
    if st.session_state.get(PLAY_KEY):
        _stop_playing()
        return
    order: list[str] = st.session_state.get(ORDER_KEY) or []
    if order and views.step_index(order, st.query_params.get("node")) >= len(order) - 1:
        select(order[0])  # at the end: replay from the start
    st.session_state[PLAY_KEY] = True
    st.session_state[PLAYED_AT_KEY] = time.monotonic()


def _advance(order: list[str], current: str) -> str:
    """One replay step when its time has come; the replay stops at the last node."""
    if time.monotonic() - st.session_state.get(PLAYED_AT_KEY, 0.0) < PLAY_EVERY_S * 0.9:
        return current
    st.session_state[PLAYED_AT_KEY] = time.monotonic()
    i = views.step_index(order, current) + 1
    if i >= len(order):
        _stop_playing()
        return current
    select(order[i])
    return order[i]


def _timer(run: RunSummary, playing: bool) -> float | None:
    if playing:
        return PLAY_EVERY_S
    return LIVE_EVERY_S if run.status == "running" else None


# ---- the fragment --------------------------------------------------------------------------


def _body(run_id: str, timer: float | None) -> None:
    s = store()  # also imports the journals of CLI runs every few seconds
    run = s.get_run(run_id)
    nodes = s.nodes(run_id) if run is not None else []
    if run is None or not nodes:
        st.error("This run has no recorded nodes in the trace store.")
        return
    order = views.step_order(nodes)
    st.session_state[ORDER_KEY] = order
    current = _apply_graph_event(order, _current(order))
    playing = bool(st.session_state.get(PLAY_KEY))
    if playing:
        current = _advance(order, current)
        playing = bool(st.session_state.get(PLAY_KEY))
    if _timer(run, playing) != timer:
        st.rerun()  # the fragment's timer is set when it is defined: start, change or drop it
    _header(run)
    fork.origin(nodes)
    export.export_buttons(s, run_id)
    controls = st.container()
    left, right = st.columns([3, 2], gap="medium")
    bottom = st.container()
    by_id = {n.node_id: n for n in nodes}
    # drawn out of order: a row picked in the table below changes the selection that the step
    # controls, the graph and the inspector above it must show in this same run
    with bottom:
        picked = node_table.show(run_id, nodes)
    if picked and picked in by_id and picked != current:
        select(picked)
        _stop_playing()
        current = picked
    with left:
        _graph(run_id, nodes, current, playing)
        st.caption(LEGEND)
        panels.show(s, run, nodes, by_id[current], select)
    with controls:
        _controls(order, current)
    with right:
        try:
            show_node(s, run, nodes, by_id[current], select)
            fork.show(s, run, nodes, by_id[current])
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


def _apply_graph_event(order: list[str], current: str) -> str:
    clicked, step = _graph_event()
    if clicked is not None and clicked != current and clicked in set(order):
        target = clicked
    elif step is not None:
        i = views.step_index(order, current) + step
        target = order[max(0, min(i, len(order) - 1))]
    else:
        return current
    select(target)
    _stop_playing()
    return target


def _graph(run_id: str, nodes: list[Node], current: str, playing: bool) -> None:
    grow = bool(st.session_state.get(GROW_KEY)) or playing
    shown = views.nodes_up_to(nodes, current) if grow else nodes
    size_by: SizeBy = "cost" if st.session_state.get(SIZE_KEY) == "cost" else "tokens"
    flow = panels.dataflow_on()
    payload = vis_payload(shown, size_by=size_by, selected=current, dataflow=flow)
    # the returned click/step were already applied by _apply_graph_event
    graph(
        payload,
        key=GRAPH_KEY,
        height=GRAPH_HEIGHT,
        selected=current,
        fit_token=zlib.crc32(run_id.encode()),
    )


def _controls(order: list[str], current: str) -> None:
    i, last = views.step_index(order, current), len(order) - 1
    playing = bool(st.session_state.get(PLAY_KEY))
    cols = st.columns([1, 1, 1, 1, 1.2, 5], vertical_alignment="bottom")
    # plain glyphs: the media-control emoji are missing from many fonts
    buttons = [
        ("« First", "first", i == 0),
        ("‹ Prev", "prev", i == 0),
        ("Next ›", "next", i == last),
        ("Last »", "last", i == last),
    ]
    for col, (label, where, off) in zip(cols, buttons, strict=False):
        col.button(label, key=f"explorer_{where}", on_click=_step_to, args=(where,), disabled=off)
    cols[4].button(
        "‖ Pause" if playing else "▶ Play",
        key="explorer_play",
        on_click=_toggle_play,
        disabled=last == 0,
    )
    with cols[5]:
        if last > 0:
            key = step_key(i + 1)
            st.slider(
                "Step", 1, last + 1, value=i + 1, key=key, on_change=_slider_moved, args=(key,)
            )
        else:
            st.caption("Step 1 of 1")
    a, b = st.columns([1, 1])
    hint = "Off: show every node. On: only the nodes that had started by this step."
    a.toggle("Grow the graph to the current step", key=GROW_KEY, help=hint)
    b.radio("Size nodes by", ["tokens", "cost"], key=SIZE_KEY, horizontal=True)


# ---- the run header ------------------------------------------------------------------------


def _duration(run: RunSummary) -> str:
    start, end = run.created_at, run.ended_at
    if not start:
        return "—"
    if end is None and run.status == "running":
        end = time.time()
    return f"{(end or start) - start:.1f} s"


def _header(run: RunSummary) -> None:
    status = run.status
    st.text(
        f"{status_badge(status)}  ·  root model: {run.root_model or '—'}  ·  "
        f"sub model: {run.sub_model or '—'}  ·  run id {run.run_id}"
    )
    tokens = (run.tokens_in or 0) + (run.tokens_out or 0)
    stats = [
        ("Iterations", f"{run.iterations or 0}"),
        ("Model calls", f"{run.llm_calls or 0}"),
        ("Tokens", f"{tokens:,}"),
        ("Cost", cost_text(run.cost_usd)),
        ("Duration", _duration(run)),
    ]
    for col, (label, value) in zip(st.columns(len(stats)), stats, strict=True):
        col.metric(label, value)
    question, answer = st.columns(2)
    with question:
        st.caption("Question")
        show_text(run.question, key=f"{run.run_id}_q")
    with answer:
        st.caption("Answer")
        show_text(run.answer, key=f"{run.run_id}_a", empty="(no answer yet)")
    if status == "running":
        st.info("⏳ This run is still running: the graph grows as its nodes arrive.")
    if run.limit_name:
        st.warning(f"The run stopped at a limit: {word(run.limit_name)}.")
    if run.error and status != "ok":
        st.error("The run ended with an error:")
        show_text(run.error, key=f"{run.run_id}_err")
