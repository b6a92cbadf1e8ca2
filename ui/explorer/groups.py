"""The groups of the Explorer's graph that the user opened and folded (session state, per run),
what a click on a group does, and the buttons that fold or reset them.

A click on a folded group opens it and selects its first failed node, else its first member; a
click on an open group's header folds it; a click on a 'more' node moves the group's window and
selects the first member shown. Deep links and steps open the groups around the selection
without remembering them (the view follows the selection).
"""

from __future__ import annotations

import streamlit as st

from rlm_core.analysis.levels import View
from rlm_core.analysis.outline import GROUP_PREFIX, Group, Outline
from ui.explorer.steps import select, stop_playing
from ui.safe import word

OVERVIEW_KEY = "explorer_overview"
"""Counts the user's returns to the overview: part of the graph's fit token, so each refits."""


def _open_key(run_id: str) -> str:
    return f"explorer_open_{run_id}"


def _fold_key(run_id: str) -> str:
    return f"explorer_fold_{run_id}"


def state(run_id: str) -> tuple[dict[str, int], set[str]]:
    """(group -> window start, for the groups the user opened; the groups the user folded)."""
    opened: dict[str, int] = st.session_state.setdefault(_open_key(run_id), {})
    folded: set[str] = st.session_state.setdefault(_fold_key(run_id), set())
    return opened, folded


def is_group(drawn_id: str) -> bool:
    return drawn_id.startswith(GROUP_PREFIX)


def clicked(outline: Outline, shown: View, run_id: str, drawn_id: str, current: str) -> str:
    """Apply a click on a group (folded, header or 'more'); returns the node to select."""
    opened, folded = state(run_id)
    gid, _, start = drawn_id.partition("@")
    g = outline.groups.get(gid)
    if g is None:
        return current
    stop_playing()
    if start.isdigit():
        opened[gid] = int(start)
        return g.members[min(int(start), len(g.members) - 1)]
    if gid in shown.open:
        fold(outline, run_id, gid)
        return g.anchor if gid in outline.path(current) else current
    opened[gid] = 0
    folded.discard(gid)
    return outline.target(gid)


def fold(outline: Outline, run_id: str, gid: str) -> None:
    opened, folded = state(run_id)
    opened.pop(gid, None)
    folded.add(gid)
    # what was opened inside it is folded with it
    for inner in [k for k in opened if gid in outline.path(outline.groups[k].anchor)]:
        opened.pop(inner)


def _fold_and_select(outline: Outline, run_id: str, gid: str) -> None:
    fold(outline, run_id, gid)
    select(outline.groups[gid].anchor)
    stop_playing()


def fold_label(g: Group) -> str:
    """Our own words for a group (labels render markdown): kinds, counts, depths, turns."""
    if g.kind == "fanout":
        return f"Fold the {len(g.members):,} {word(g.member_kind)} calls"
    if g.kind == "child":
        return f"Fold the child run at depth {g.depth}"
    lo, hi = g.turns or (0, 0)
    return f"Fold turns {lo} to {hi}"


def fold_buttons(outline: Outline, run_id: str, node_id: str) -> None:
    """One button per open group around the selected node (innermost first)."""
    around = outline.path(node_id)
    if not around:
        return
    st.caption("This node is inside groups of the graph:")
    for gid in around:
        st.button(
            fold_label(outline.groups[gid]),
            key=f"fold_{gid}",
            on_click=_fold_and_select,
            args=(outline, run_id, gid),
            help="Draw this group as one node again and select the node it hangs under.",
        )


def _overview(run_id: str) -> None:
    st.session_state.pop(_open_key(run_id), None)
    st.session_state.pop(_fold_key(run_id), None)
    st.session_state[OVERVIEW_KEY] = st.session_state.get(OVERVIEW_KEY, 0) + 1


def overview_button(run_id: str) -> None:
    st.button(
        "⤢ Overview",
        key="explorer_overview_button",
        on_click=_overview,
        args=(run_id,),
        help="Fold what you opened and fit the whole run in view.",
    )


def fit_token() -> int:
    return int(st.session_state.get(OVERVIEW_KEY, 0))
