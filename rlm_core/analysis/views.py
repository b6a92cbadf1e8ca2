"""What the Explorer shows, computed from trace nodes: step order, the messages an lm call saw,
where a slice sits in the context, and short labels and previews. No Streamlit imports (the node
table itself is filtered and paged in SQL: `TraceStore.table_page`).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rlm_core.context import flatten
from rlm_core.types import Node

TABLE_PREVIEW_CHARS = 120
PART_SEPARATOR = 2
"""flatten() joins the parts of a list/dict context with a blank line ("\\n\\n")."""


def step_order(nodes: Iterable[Node]) -> list[str]:
    """Node ids in execution order: ids are time-sortable and a node gets its id when it starts."""
    return sorted(n.node_id for n in nodes)


def step_index(order: Sequence[str], node_id: str | None) -> int:
    """Position of `node_id` in `order`, or 0 when it is not there."""
    if node_id is None:
        return 0
    i = bisect.bisect_left(order, node_id)
    return i if i < len(order) and order[i] == node_id else 0


def nodes_up_to(nodes: Iterable[Node], last_id: str) -> list[Node]:
    """The nodes that had started by the time `last_id` started (the graph 'grown to a step')."""
    return [n for n in nodes if n.node_id <= last_id]


# ---- lm calls ------------------------------------------------------------------------------


def session_lm_nodes(nodes: Iterable[Node], lm_node: Node) -> list[Node]:
    """The lm calls of the same RLM (root or child) up to and including `lm_node`, in order."""
    return sorted(
        (
            n
            for n in nodes
            if n.kind == "lm" and n.parent_id == lm_node.parent_id and n.node_id <= lm_node.node_id
        ),
        key=lambda n: n.node_id,
    )


def _delta(node: Node) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(node.input or "[]")
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    return [m if isinstance(m, dict) else {"role": "?", "content": str(m)} for m in data]


def _gap(count: int, why: str) -> dict[str, Any]:
    return {"role": "(missing)", "content": f"({count} message(s) not recorded: {why})"}


def lm_messages(nodes: Iterable[Node], lm_node: Node) -> list[dict[str, Any]]:
    """The full message list `lm_node` was sent, rebuilt from the deltas of its RLM's lm calls.

    Each lm node stores only the messages added since the previous call of the same RLM and how
    many came before (`meta.messages_before`); a missing or unreadable delta becomes a marker.
    `nodes` must carry full inputs (big ones come back from `TraceStore.node` as previews).
    """
    # the node passed in wins over its namesake in `nodes` (it may be the one with full texts)
    latest = {n.node_id: n for n in nodes}
    latest[lm_node.node_id] = lm_node
    messages: list[dict[str, Any]] = []
    for n in session_lm_nodes(latest.values(), lm_node):
        before = n.meta.get("messages_before")
        if isinstance(before, int) and before > len(messages):
            messages.append(_gap(before - len(messages), "an earlier call is missing"))
        elif isinstance(before, int):
            del messages[before:]  # the loop took back turns (a small model's refused guesses)
        delta = _delta(n)
        if delta is None:
            messages.append(_gap(1, f"the input of {n.node_id} is not valid JSON"))
            continue
        messages.extend(delta)
    return messages


def message_text(message: dict[str, Any]) -> str:
    """A message's content as text (multi-part contents are joined)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


# ---- positions in the context --------------------------------------------------------------


def _pct(pos: int, total: int) -> str:
    pct = 100.0 * pos / total if total else 0.0
    return f"{pct:.1f}%" if pct >= 0.1 or pct == 0 else f"{pct:.2g}%"


def _part_at(offsets: Sequence[tuple[str, int]], pos: int) -> int:
    starts = [start for _, start in offsets]
    return max(0, bisect.bisect_right(starts, pos) - 1)


def _part_text(offsets: Sequence[tuple[str, int]], start: int, end: int, total: int) -> str:
    first, last = _part_at(offsets, start), _part_at(offsets, max(start, end - 1))
    name, base = offsets[first]
    if first == last:
        nxt = offsets[first + 1][1] - PART_SEPARATOR if first + 1 < len(offsets) else total
        return f"in part {name!r} (chars {start - base:,}–{end - base:,} of {nxt - base:,})"
    return f"across parts {name!r} to {offsets[last][0]!r}"


def describe_spans(
    spans: Sequence[Sequence[int]], total: int, offsets: Sequence[tuple[str, int]] = ()
) -> list[str]:
    """One line per [start, end) range: absolute position, share of the document, part name."""
    lines = []
    for span in spans:
        start, end = int(span[0]), int(span[1])
        text = f"chars {start:,}–{end:,} of {total:,} ({_pct(start, total)}–{_pct(end, total)})"
        if offsets:
            text += " " + _part_text(offsets, start, end, total)
        lines.append(text)
    return lines


def span_description(spans: Sequence[Sequence[int]], context: Any) -> str:
    """Human text for where the ranges sit in the original context (list/dict parts named)."""
    if not spans:
        return "No part of the original context was found verbatim in this text."
    text, offsets = flatten(context)
    lines = describe_spans(spans, len(text), offsets)
    covered = sum(max(0, int(e) - int(s)) for s, e in spans)
    summary = f"{len(lines)} range(s), {covered:,} chars" if len(lines) > 1 else ""
    return "; ".join(lines) + (f" — {summary}" if summary else "")


def ambiguity_notes(node: Node, total: int) -> list[str]:
    """One line per run of a node's text that occurs at several places of the context: the
    trace shows the first place but does not claim it (meta.ambiguous, see engine/provenance)."""
    lines = []
    for item in node.meta.get("ambiguous") or []:
        start, end, count = int(item["start"]), int(item["end"]), item.get("occurrences")
        often = f"occurs {count:,} times" if count else "occurs more than once"
        lines.append(
            f"{end - start:,} chars of it are not placed: this text {often} in the document and "
            f"nothing tells which copy it came from; the first it could be is at chars "
            f"{start:,}–{end:,} ({_pct(start, total)})"
        )
    return lines


def ambiguous_spans(node: Node) -> list[list[int]]:
    """The first place of each run of the node's text that occurs at several places."""
    return [[int(i["start"]), int(i["end"])] for i in node.meta.get("ambiguous") or []]


def slice_with_margin(
    context_text: str, start: int, end: int, margin: int = 300
) -> tuple[str, str, str]:
    """(before, slice, after): the slice [start, end) with up to `margin` chars either side."""
    n = len(context_text)
    start = max(0, min(start, n))
    end = max(start, min(end, n))
    lo, hi = max(0, start - margin), min(n, end + margin)
    return context_text[lo:start], context_text[start:end], context_text[end:hi]


# ---- bounded text --------------------------------------------------------------------------


@dataclass(frozen=True)
class Clipped:
    text: str
    total: int

    @property
    def clipped(self) -> bool:
        return len(self.text) < self.total


def clip(text: str | None, limit: int) -> Clipped:
    """The first `limit` chars of `text` and how long it really is."""
    full = text or ""
    return Clipped(full[:limit], len(full))


# ---- labels --------------------------------------------------------------------------------


def one_line(text: str, limit: int = TABLE_PREVIEW_CHARS) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _word(value: Any) -> str:
    # imported traces can hold anything here, and the label goes into headings (markdown)
    return re.sub(r"\W", "", str(value))[:30]


def node_label(node: Node, step: int) -> str:
    """Short name of a node for headings and pickers: no document text, no markdown syntax."""
    it = node.meta.get("iteration")
    extra = f" iteration {_word(it)}" if it is not None and node.kind in ("lm", "code") else ""
    idx = node.meta.get("batch_index")
    if idx is not None:
        extra = f" [{_word(idx)}]"
    kind, status = _word(node.kind), _word(node.status)
    return f"step {step}: {kind}{extra} (depth {_word(node.depth)}, {status})"
