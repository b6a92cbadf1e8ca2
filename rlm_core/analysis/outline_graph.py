"""vis-network data for a level-of-detail view of a run (`levels.view`): nodes in the styles of
`graph.py`, group nodes that sum up what they hold, tree edges, and data-flow edges gathered
between what is drawn (one edge per pair, never a fan of thousands). Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rlm_core.analysis.graph import (
    SizeBy,
    edge,
    esc,
    flow_edge,
    labels,
    marks,
    node_style,
    vis_node,
)
from rlm_core.analysis.layout import left_to_right, place, square_rows
from rlm_core.analysis.levels import Drawn, View, shown_as
from rlm_core.analysis.outline import Group, Outline

NODE_FONT = {"size": 15}
MEMBER_EDGE = "#d4d4d4"
"""Edges from an open group to its members: light, the grid beside it says who belongs."""
GROUP_FONT = {"size": 14, "face": "sans-serif", "color": "#ffffff"}
CHAR_PX = 8.0
"""Width of a label character at these font sizes, to give each level the room its labels need."""
_PROBLEM_BORDER = {"error": "#d62728", "limit": "#ff7f0e", "interrupted": "#8c8c8c"}


def _short(value: float) -> str:
    """1,520 -> 1.5k; 2,400,000 -> 2.4M: a group box has room for a few characters."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + unit
    return f"{value:.0f}"


def _spread(values: tuple[float, float] | None, show: Callable[[float], str], unit: str) -> str:
    if values is None:
        return ""
    lo, hi = values
    return f"{show(lo)} {unit}" if lo == hi else f"{show(lo)}–{show(hi)} {unit}"


def _mix(g: Group) -> str:
    order = ("ok", "error", "limit", "interrupted", "running")
    parts = [f"{g.statuses[s]:,} {s}" for s in order if g.statuses.get(s)]
    parts += [f"{c:,} {s}" for s, c in sorted(g.statuses.items()) if s not in order]
    return " · ".join(parts)


def group_lines(g: Group) -> list[str]:
    """What a group node says: what it holds, its status mix, and the spread inside it."""
    if g.kind == "fanout":
        head = f"{len(g.members):,} × {g.member_kind} (d{g.depth})"
    elif g.kind == "child":
        below = f" · {g.levels} levels" if g.levels > 1 else ""
        head = f"child run d{g.depth} · {g.size:,} nodes{below}"
    else:
        lo, hi = g.turns or (0, 0)
        head = f"turns {lo}–{hi} · {g.size:,} nodes"
    lines = [head, _mix(g)]
    spread = " · ".join(
        t
        for t in (_spread(g.latency, "{:.1f}".format, "s"), _spread(g.tokens, _short, "tok"))
        if t and g.kind == "fanout"
    )
    if spread:
        lines.append(spread)
    return lines


def _group_title(g: Group, role: str) -> str:
    lines = group_lines(g)
    if g.size > len(g.members):
        lines.append(f"{g.size:,} nodes inside, {g.tokens_total:,} tokens, ${g.cost:.5f}")
    if g.problems:
        lines.append(f"{len(g.problems):,} node(s) inside ended badly")
    lines.append("click to fold" if role == "header" else "click to open")
    return esc("\n".join(lines))


def _worst(outline: Outline, g: Group) -> str | None:
    """The worst status of any node inside (errors first), for the group's border."""
    found = {outline.by_id[p].status for p in g.problems}
    return next((s for s in _PROBLEM_BORDER if s in found), None)


def _box_chars(outline: Outline, d: Drawn) -> int:
    if d.role == "more":
        return 16
    return 2 + max(len(line) for line in group_lines(outline.groups[str(d.group)]))


def _group_node(g: Group, d: Drawn, xy: tuple[float, float], worst: str | None) -> dict[str, Any]:
    base = node_style(g.member_kind, g.depth, "ok")
    worst = None if d.role == "more" else worst  # the failures may sit in the shown part
    border = _PROBLEM_BORDER[worst] if worst else base["color"]["border"]
    if d.role == "more":
        label, title = f"… {d.hidden:,} more", f"show {d.hidden:,} more of this group"
    else:
        lines = group_lines(g)
        label = ("▾ " if d.role == "header" else "▸ ") + "\n".join(lines)
        title = _group_title(g, d.role)
    return {
        **base,
        "id": d.id,
        "label": esc(label),
        "title": esc(title) if d.role == "more" else title,
        "x": round(xy[0], 1),
        "y": round(xy[1], 1),
        "size": 16.0,
        "shape": "box",
        "group": "group",
        "color": {"background": base["color"]["background"], "border": border},
        "borderWidth": 4 if worst else 1,
        "font": GROUP_FONT,
        "opacity": 0.75 if d.role == "header" else 1.0,
    }


def view_payload(
    outline: Outline,
    v: View,
    *,
    size_by: SizeBy = "tokens",
    selected: str | None = None,
    dataflow: bool = True,
    previews: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """vis-network nodes and edges of a view, with positions; `selected` is the drawn node or
    group that stands for the selected node. `previews`: short texts of drawn nodes (tooltips)."""
    previews = previews or {}
    children: dict[str, list[str]] = {d.id: [] for d in v.items}
    roots = []
    for d in v.items:
        if d.parent is None:
            roots.append(d.id)
        else:
            children[d.parent].append(d.id)
    order = [d.id for d in v.items]
    drawn_nodes = [outline.by_id[d.id] for d in v.items if d.role == "node"]
    names = labels(drawn_nodes)
    widths = {
        d.id: CHAR_PX * (len(names[d.id]) if d.role == "node" else _box_chars(outline, d)) + 24
        for d in v.items
    }
    slots = place(roots, order, children, lambda u, cs, w, h: square_rows(cs, w, h))
    pos = left_to_right(slots, widths)
    how = marks(drawn_nodes)
    vis = []
    for d in v.items:
        if d.role == "node":
            n = outline.by_id[d.id]
            mark = how.get(n.node_id, "")
            drawn = vis_node(n, pos[d.id], names[d.id], size_by, mark, previews.get(d.id))
            # the same order of sizes in less room: rows here are one node with its label tall
            vis.append({**drawn, "size": round(4 + 0.5 * drawn["size"], 1), "font": NODE_FONT})
        else:
            g = outline.groups[str(d.group)]
            vis.append(_group_node(g, d, pos[d.id], _worst(outline, g)))
    headers = {d.id for d in v.items if d.role == "header"}
    edges = [
        {**edge(d.id, d.parent, d.id), "color": {"color": MEMBER_EDGE}}
        if d.parent in headers
        else edge(d.id, d.parent, d.id)
        for d in v.items
        if d.parent is not None
    ]
    if dataflow:
        edges += _flow_edges(outline, v, selected, set(order))
    shown = shown_as(outline, v, selected, selected) if selected in outline.by_id else None
    return {"nodes": vis, "edges": edges, "selected": shown}


def _flow_edges(
    outline: Outline, v: View, selected: str | None, drawn: set[str]
) -> list[dict[str, Any]]:
    """One dashed edge per pair of drawn things that answers flowed between, with the
    variables and how many sub-calls' answers it stands for."""
    gathered: dict[tuple[str, str], tuple[dict[str, None], set[str]]] = {}
    rep: dict[str, str] = {}
    for src, dst, var in outline.flows:
        if src not in outline.by_id or dst not in outline.by_id:
            continue
        for node_id in (src, dst):
            if node_id not in rep:
                rep[node_id] = shown_as(outline, v, node_id, selected)
        a, b = rep[src], rep[dst]
        if a == b or a not in drawn or b not in drawn:
            continue
        names, sources = gathered.setdefault((a, b), ({}, set()))
        names[var] = None
        sources.add(src)
    return [
        flow_edge(a, b, list(names), len(sources))
        for (a, b), (names, sources) in sorted(gathered.items())
    ]
