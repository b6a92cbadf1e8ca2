"""Selecting a node and stepping through a run in execution order: the URL's `?node=`, the step
buttons, the step slider, and Play, which advances one step per tick until the end unless the
user pauses it or moves somewhere else.
"""

from __future__ import annotations

import time

import streamlit as st

from rlm_core.analysis import views
from rlm_core.types import RunSummary

STEP_KEY = "explorer_step"
PLAY_KEY = "explorer_playing"
PLAYED_AT_KEY = "explorer_played_at"
ORDER_KEY = "explorer_order"
LIVE_EVERY_S = 1.0
PLAY_EVERY_S = 0.8


def select(node_id: str) -> None:
    """Select a node (also the callback of jump buttons); the URL keeps it for links."""
    st.query_params["node"] = node_id


def stop_playing() -> None:
    st.session_state[PLAY_KEY] = False


def playing() -> bool:
    return bool(st.session_state.get(PLAY_KEY))


def current(order: list[str]) -> str:
    """The node in the URL if it belongs to the run, else the run's first step."""
    wanted = st.query_params.get("node")
    if wanted and order[views.step_index(order, wanted)] == wanted:
        return str(wanted)
    if wanted:
        st.warning("The node in the link is not part of this run; showing its first step.")
    select(order[0])
    return order[0]


def step_from(order: list[str], node_id: str, by: int) -> str:
    i = views.step_index(order, node_id) + by
    return order[max(0, min(i, len(order) - 1))]


def _step_to(where: str) -> None:
    order: list[str] = st.session_state.get(ORDER_KEY) or []
    if not order:
        return
    i = views.step_index(order, st.query_params.get("node"))
    j = {"first": 0, "prev": i - 1, "next": i + 1, "last": len(order) - 1}[where]
    select(order[max(0, min(j, len(order) - 1))])
    stop_playing()


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
    stop_playing()


def _toggle_play() -> None:
    if playing():
        stop_playing()
        return
    order: list[str] = st.session_state.get(ORDER_KEY) or []
    if order and views.step_index(order, st.query_params.get("node")) >= len(order) - 1:
        select(order[0])  # at the end: replay from the start
    st.session_state[PLAY_KEY] = True
    st.session_state[PLAYED_AT_KEY] = time.monotonic()


def advance(order: list[str], node_id: str) -> str:
    """One replay step when its time has come; the replay stops at the last node."""
    if time.monotonic() - st.session_state.get(PLAYED_AT_KEY, 0.0) < PLAY_EVERY_S * 0.9:
        return node_id
    st.session_state[PLAYED_AT_KEY] = time.monotonic()
    i = views.step_index(order, node_id) + 1
    if i >= len(order):
        stop_playing()
        return node_id
    select(order[i])
    return order[i]


def timer(run: RunSummary, play: bool) -> float | None:
    """How often the Explorer's fragment reruns by itself: per Play tick, per second while the
    run is live, else never."""
    if play:
        return PLAY_EVERY_S
    return LIVE_EVERY_S if run.status == "running" else None


def controls(order: list[str], node_id: str) -> None:
    """First, Prev, Next, Last, Play and the step slider, in one row."""
    i, last = views.step_index(order, node_id), len(order) - 1
    cols = st.columns([0.9, 0.9, 0.9, 0.9, 1.1, 6], vertical_alignment="center")
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
        "‖ Pause" if playing() else "▶ Play",
        key="explorer_play",
        on_click=_toggle_play,
        disabled=last == 0,
    )
    with cols[5]:
        if last > 0:
            key = step_key(i + 1)
            st.slider(
                "Step",
                1,
                last + 1,
                value=i + 1,
                key=key,
                on_change=_slider_moved,
                args=(key,),
                label_visibility="collapsed",
                format=f"step %d of {last + 1:,}",
            )
        else:
            st.caption("Step 1 of 1")
