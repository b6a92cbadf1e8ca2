"""A window of the context with ranges highlighted: a few thousand characters around one range,
never the whole document, with previous/next range navigation.

The text is untrusted: every piece goes through `safe.esc` and the only markup is our own <mark>.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import streamlit as st

from rlm_core.analysis.insight import SUB_CALL_KINDS, subtree
from rlm_core.engine.spans import merge_spans
from rlm_core.types import Node
from ui.safe import esc

RADIUS = 2_000
"""Characters shown after a range (and before a position)."""
LEAD = 240
"""Characters shown before a range: about two lines, so the box opens with the range in view."""
MAX_RANGE_SHOWN = 6_000
"""Longer ranges (a cell that read everything) are shown from their start only."""

Spans = list[list[int]]
Mark = tuple[int, int, str]

_STYLE = {
    "read": "background:#fff1a8;color:#111;padding:0;",
    "shown": "background:#ffb74d;color:#111;padding:0;",
    "focus": "background:#ffd54f;color:#111;padding:0;border-bottom:2px solid #c77c00;",
    "model": "background:#fff1a8;color:#111;padding:0;",
    "code": "background:#cfe3ff;color:#111;padding:0;",
}
"""Mark class -> inline style; the class names are ours, never taken from the text."""
LEGEND = {
    "read": "yellow: the node's ranges",
    "focus": "underlined: the current range",
    "shown": "orange: printed to the root model",
    "model": "yellow: a model saw it",
    "code": "blue: only code read it",
}
_BOX = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:0.8rem;line-height:1.45;"
    "white-space:pre-wrap;word-break:break-word;max-height:420px;overflow-y:auto;padding:8px 10px;"
    "border:1px solid rgba(128,128,128,0.35);border-radius:6px;"
)


def ranges_of(node: Node, nodes: Sequence[Node]) -> tuple[Spans, Spans]:
    """(ranges to highlight, ranges printed to the root model) of the original context.

    Code: what it read and printed. Sub-call: what its prompt held. FINAL: the slices its source
    sub-calls saw. lm call: what earlier cells of its RLM printed to it. Run: all its tree read.
    """
    by_id = {n.node_id: n for n in nodes}
    if node.kind == "code":
        return merge_spans(node.context_spans), merge_spans(node.meta.get("shown_spans") or [])
    if node.kind in SUB_CALL_KINDS:
        return merge_spans(node.context_spans), []
    if node.kind == "final":
        sources = [by_id[s] for s in node.meta.get("sources") or [] if s in by_id]
        return merge_spans(s for n in sources for s in n.context_spans), []
    if node.kind == "lm":
        cells = [
            n
            for n in nodes
            if n.kind == "code" and n.parent_id == node.parent_id and n.node_id < node.node_id
        ]
        shown = merge_spans(s for c in cells for s in c.meta.get("shown_spans") or [])
        return shown, shown
    if node.kind == "run":
        inside = subtree(node, nodes)
        read = merge_spans(s for n in inside for s in n.context_spans)
        shown = merge_spans(
            s for n in inside if n.kind == "code" for s in n.meta.get("shown_spans") or []
        )
        return read, shown
    return [], []


def window(start: int, end: int, total: int, radius: int = RADIUS) -> tuple[int, int]:
    """[lo, hi) to show around the range [start, end): bounded even for a huge range, starting
    shortly before the range so that it is in view without scrolling."""
    start = max(0, min(start, total))
    end = max(start, min(end, start + MAX_RANGE_SHOWN, total))
    return max(0, start - min(radius, LEAD)), min(total, end + radius)


def window_html(text: str, lo: int, hi: int, marks: Sequence[Mark]) -> str:
    """HTML of text[lo:hi] with the marks (start, end, class) highlighted; later marks win their
    colour, and the current range stays underlined under any other colour."""
    lo, hi = max(0, lo), min(len(text), hi)
    cuts = {lo, hi}
    for s, e, _ in marks:
        cuts.update(p for p in (s, e) if lo < p < hi)
    points = sorted(cuts)
    out = []
    for a, b in itertools.pairwise(points):
        piece = esc(text[a:b])
        cls = next((c for s, e, c in reversed(marks) if s <= a and b <= e), None)
        focus = cls != "focus" and any(c == "focus" and s <= a and b <= e for s, e, c in marks)
        if cls in _STYLE:
            piece = f'<mark class="rlm-mark rlm-{cls}" style="{_STYLE[cls]}">{piece}</mark>'
            if focus:  # printed over the current range: still underlined as the current range
                piece = f'<mark class="rlm-mark rlm-focus" style="{_STYLE["focus"]}">{piece}</mark>'
            out.append(piece)
        else:
            out.append(piece)
    head = f'<div class="rlm-doc" style="{_BOX}">'
    return (
        head + ("…" if lo > 0 else "") + "".join(out) + ("…" if hi < len(text) else "") + "</div>"
    )


def _clip(spans: Sequence[Sequence[int]], lo: int, hi: int, cls: str) -> list[Mark]:
    return [(max(lo, s), min(hi, e), cls) for s, e in spans if s < hi and lo < e]


def _pct(pos: int, total: int) -> str:
    return f"{100 * pos / total:.1f}%" if total else "0%"


def _move(key: str, step: int, count: int) -> None:
    st.session_state[key] = max(0, min(count - 1, int(st.session_state.get(key, 0)) + step))


def show(
    text: str,
    spans: Sequence[Sequence[int]],
    *,
    key: str,
    shown: Sequence[Sequence[int]] = (),
    empty: str = "This node has no ranges in the context.",
) -> None:
    """The window around one of `spans`, with ‹ / › to move between them."""
    ranges = merge_spans(spans)
    if not ranges:
        st.info(empty)
        return
    index_key = f"docview_{key}"
    i = max(0, min(int(st.session_state.get(index_key, 0)), len(ranges) - 1))
    st.session_state[index_key] = i
    start, end = ranges[i]
    lo, hi = window(start, end, len(text))
    prev, label, nxt = st.columns([1, 6, 1], vertical_alignment="center")
    prev.button(
        "‹",
        key=f"{index_key}_prev",
        on_click=_move,
        args=(index_key, -1, len(ranges)),
        disabled=i == 0,
        help="previous range",
    )
    nxt.button(
        "›",
        key=f"{index_key}_next",
        on_click=_move,
        args=(index_key, 1, len(ranges)),
        disabled=i == len(ranges) - 1,
        help="next range",
    )
    label.text(
        f"range {i + 1} of {len(ranges)}: chars {start:,}–{end:,} of {len(text):,} "
        f"({_pct(start, len(text))}) · {end - start:,} chars"
    )
    # later marks win: the current range over the others, what the root model saw over both
    marks = [*_clip(ranges, lo, hi, "read"), (max(lo, start), min(hi, end), "focus")]
    marks += _clip(shown, lo, hi, "shown")
    st.html(window_html(text, lo, hi, marks))
    if end - start > MAX_RANGE_SHOWN:
        st.caption(f"this range is {end - start:,} chars long; its first {MAX_RANGE_SHOWN:,} shown")
    kinds = ["focus", "read"] + (["shown"] if shown else [])
    st.caption(" · ".join(LEGEND[k] for k in kinds) + f" · {RADIUS:,} chars of context after")


def show_at(
    text: str, pos: int, *, model: Spans, code: Spans, radius: int = RADIUS
) -> tuple[int, int]:
    """The window around position `pos`, coloured by who read what; returns the window."""
    lo, hi = window(pos, pos, len(text), radius)
    marks = [*_clip(code, lo, hi, "code"), *_clip(model, lo, hi, "model")]
    st.html(window_html(text, lo, hi, marks))
    st.caption(f"chars {lo:,}–{hi:,} of {len(text):,} · {LEGEND['model']} · {LEGEND['code']}")
    return lo, hi
