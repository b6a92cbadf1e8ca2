"""vis-network data for the graph of a run (styles, tooltips, data-flow edges) and the
standalone HTML export; the tree and its positions come from `layout.py`. No Streamlit imports.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from collections.abc import Iterable
from typing import Any, Literal

from rlm_core.analysis.layout import build_graph, tree_layout
from rlm_core.analysis.outline import flows
from rlm_core.types import Node

PREVIEW_CHARS = 80
"""Tooltips carry short previews only: the payload is re-sent on every live update."""

SizeBy = Literal["tokens", "cost", "none"]
Mark = Literal["", "replayed", "fork"]
"""How a node of a forked or replayed run came about: from the recorded run, or where it left it."""
FORK_COLOUR = "#e377c2"
FLOW_COLOUR = "#d9822b"
FLOW_LABEL_NAMES = 2
"""Variable names written on a data-flow edge; its tooltip lists them all."""
_MARK_LINE = {
    "replayed": "replayed from the recorded run (no new model call)",
    "fork": "fork point: the run leaves the recorded one here",
}

_SHAPE = {
    "run": "hexagon",
    "lm": "dot",
    "code": "square",
    "llm_query": "diamond",
    "rlm_query": "triangle",
    "final": "star",
}
# (hue, saturation %, lightness % at depth 0); deeper runs get lighter shades of the same hue
_HSL = {
    "run": (215, 55, 42),
    "lm": (270, 45, 50),
    "code": (135, 45, 38),
    "llm_query": (180, 50, 36),
    "rlm_query": (320, 50, 48),
    "final": (45, 90, 45),
}
_STATUS_BORDER = {
    "error": ("#d62728", 4),
    "limit": ("#ff7f0e", 4),
    "interrupted": ("#8c8c8c", 3),
    "cancelled": ("#8c8c8c", 2),
    "running": ("#f5c400", 4),
}
_CUT_SHORT = ("interrupted", "cancelled")


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def _preview(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _hsl_hex(h: float, s: float, lum: float) -> str:
    s, lum = s / 100, lum / 100
    a = s * min(lum, 1 - lum)

    def f(n: int) -> int:
        k = (n + h / 30) % 12
        return round(255 * (lum - a * max(-1, min(k - 3, 9 - k, 1))))

    return f"#{f(0):02x}{f(8):02x}{f(4):02x}"


def labels(items: list[Node]) -> dict[str, str]:
    """Short canvas labels; code cells of one iteration are told apart as #k.1, #k.2."""
    per_iter: dict[tuple[str | None, object], int] = {}
    for n in items:
        if n.kind == "code":
            key = (n.parent_id, n.meta.get("iteration", n.seq))
            per_iter[key] = per_iter.get(key, 0) + 1
    seen: dict[tuple[str | None, object], int] = {}
    out: dict[str, str] = {}
    for n in items:
        it = n.meta.get("iteration", n.seq)
        if n.kind == "run":
            label = f"run d{n.depth}"
        elif n.kind == "lm":
            label = f"lm #{it}"
        elif n.kind == "code":
            key = (n.parent_id, it)
            seen[key] = seen.get(key, 0) + 1
            label = f"code #{it}" + (f".{seen[key]}" if per_iter[key] > 1 else "")
            label += " (engine)" if n.meta.get("ran_for_model") else ""
        elif n.kind == "final":
            label = "FINAL"
        else:
            idx = n.meta.get("batch_index")
            label = n.kind + (f"[{idx}]" if idx is not None else "")
        out[n.node_id] = esc(label)
    return out


def _title(n: Node, mark: Mark = "", preview: str | None = None) -> str:
    lines = [
        f"{n.kind} {n.node_id}",
        f"{n.status} · depth {n.depth}" + (f" · {n.model}" if n.model else ""),
    ]
    if mark:
        lines.append(_MARK_LINE[mark])
    stats = []
    if n.tokens_in is not None or n.tokens_out is not None:
        stats.append(f"{n.tokens_in or 0} in / {n.tokens_out or 0} out tokens")
    if n.cost_usd is not None:
        stats.append(f"${n.cost_usd:.5f}")
    if n.latency_s is not None:
        stats.append(f"{n.latency_s:.2f} s")
    if stats:
        lines.append(" · ".join(stats))
    if n.meta.get("batch") is not None:
        lines.append(f"batch item {n.meta.get('batch_index')} of {n.meta.get('batch_size')}")
    # one preview only: the inspector has the full texts, the tooltip is re-sent on every update
    for name, text in (("error", n.error), ("output", n.output), ("code", n.code), ("", preview)):
        if text:
            lines.append(f"{name}: {_preview(text)}" if name else _preview(text))
            break
    return esc("\n".join(lines))


def _size(n: Node, size_by: SizeBy) -> float:
    # absolute log scales, not relative to the biggest node: a live run must not resize every node
    # on each update just because a new maximum arrived
    if size_by == "tokens":
        v = math.log10(1 + (n.tokens_in or 0) + (n.tokens_out or 0))
    elif size_by == "cost":
        v = math.log10(1 + (n.cost_usd or 0.0) * 1e6)
    else:
        return 16.0
    return round(min(40.0, 10.0 + 4.0 * v), 1)


@functools.cache
def node_style(kind: str, depth: int, status: str, mark: Mark = "") -> dict[str, Any]:
    """Shape and colours for one (kind, depth, status, mark); shared read-only between nodes."""
    h, s, lum = _HSL.get(kind, (0, 0, 40))
    fill = _hsl_hex(h, s, min(lum + 9 * depth, 82))
    border, bw = _STATUS_BORDER.get(status, (_hsl_hex(h, s, max(lum - 15, 10)), 1))
    # Every key is always present: the browser merges updates into the old node, so a key left
    # out (say the glow of a node that has stopped running) would keep its old value.
    return {
        "shape": _SHAPE.get(kind, "dot"),
        "group": esc(kind),  # never shown, but an imported trace's kind can be anything
        "color": {"background": fill, "border": border},
        "borderWidth": bw,
        "shapeProperties": {"borderDashes": [5, 4] if status in _CUT_SHORT else False},
        "opacity": 0.4 if mark == "replayed" else 0.55 if status in _CUT_SHORT else 1.0,
        "shadow": {
            "enabled": status == "running" or mark == "fork",
            "color": "#f5c400" if status == "running" else FORK_COLOUR,
            "size": 16 if status == "running" else 22,
            "x": 0,
            "y": 0,
        },
    }


def marks(nodes: Iterable[Node]) -> dict[str, Mark]:
    """Replayed nodes and the fork point of a forked or replayed run (others are unmarked).

    In a fork everything started before the fork point belongs to the recorded part (code cells
    there re-ran the recorded code); the fork point is the edited call, else the first root call
    that went to a live model.
    """
    items = sorted(nodes, key=lambda n: n.node_id)
    out: dict[str, Mark] = {n.node_id: "replayed" for n in items if n.meta.get("replayed")}
    root = next((n for n in items if n.kind == "run" and n.depth == 0), None)
    if root is None or not isinstance(root.meta.get("forked_from"), dict):
        return out
    calls = [n for n in items if n.kind == "lm" and n.parent_id == root.node_id]
    fork = next((n for n in calls if n.meta.get("finish_reason") == "edited"), None)
    fork = fork or next((n for n in calls if not n.meta.get("replayed")), None)
    if fork is None:
        return out
    for n in items:
        if n.node_id < fork.node_id and n is not root:
            out[n.node_id] = "replayed"
    out[fork.node_id] = "fork"
    return out


def vis_node(
    n: Node,
    xy: tuple[float, float],
    label: str,
    size_by: SizeBy,
    mark: Mark = "",
    preview: str | None = None,
) -> dict[str, Any]:
    """One node; `preview` stands in for its texts when `n` is an outline node (no texts)."""
    return {
        "id": n.node_id,
        "label": label,
        "title": _title(n, mark, preview),
        "x": round(xy[0], 1),
        "y": round(xy[1], 1),
        "size": _size(n, size_by),
        **node_style(n.kind, n.depth, n.status, mark),
    }


def edge(
    edge_id: str, src: str, dst: str, *, label: str = "", title: str = "", flow: bool = False
) -> dict[str, Any]:
    # every key in every edge: the browser merges updates, so a missing key keeps an old value
    return {
        "id": edge_id,
        "from": src,
        "to": dst,
        "dashes": [6, 5] if flow else False,
        "label": label,
        "title": title,
        "color": {"color": FLOW_COLOUR if flow else "#9a9a9a"},
        "arrows": {"to": {"enabled": True, "scaleFactor": 0.5}},
        # curved, so a flow back into the cell that made the call does not hide its tree edge
        "smooth": {"enabled": flow, "type": "curvedCW", "roundness": 0.3},
        "font": {"size": 10 if flow else 0, "color": FLOW_COLOUR, "strokeWidth": 3},
    }


def flow_label(names: list[str]) -> str:
    shown = ", ".join(names[:FLOW_LABEL_NAMES])
    return shown + (f" +{len(names) - FLOW_LABEL_NAMES}" if len(names) > FLOW_LABEL_NAMES else "")


def dataflow_edges(items: Iterable[Node]) -> list[dict[str, Any]]:
    """Dashed edges sub-call -> code cell whose variables took its answer (label: the variables)
    and sub-call -> FINAL for the answers the final value holds; only between drawn nodes."""
    items = list(items)
    present = {n.node_id for n in items}
    grouped: dict[tuple[str, str], list[str]] = {}
    for src, dst, var in flows(items):
        grouped.setdefault((src, dst), []).append(var)
    return [
        flow_edge(src, dst, names)
        for (src, dst), names in sorted(grouped.items())
        if src in present and dst in present and src != dst
    ]


def flow_edge(src: str, dst: str, names: list[str], count: int = 1) -> dict[str, Any]:
    """A data-flow edge; `count` answers travel along it when it stands for a group's flows."""
    times = f" ×{count:,}" if count > 1 else ""
    return edge(
        f"flow:{src}>{dst}",
        src,
        dst,
        label=esc(flow_label(names) + times),
        title=esc(f"data flow{times}: " + ", ".join(names)),
        flow=True,
    )


def vis_payload(
    nodes: Iterable[Node],
    *,
    size_by: SizeBy = "tokens",
    selected: str | None = None,
    dataflow: bool = True,
) -> dict[str, Any]:
    """vis-network nodes and edges with precomputed positions; every text from a node is escaped.

    With `dataflow`, dashed edges show where sub-call answers went (see `dataflow_edges`)."""
    items = sorted(nodes, key=lambda n: n.node_id)
    g = build_graph(items)
    pos = tree_layout(g)
    names = labels(items)
    how = marks(items)
    vis_nodes = [
        vis_node(n, pos[n.node_id], names[n.node_id], size_by, how.get(n.node_id, ""))
        for n in items
    ]
    # a child has exactly one parent edge, so the child's id is a stable id for that edge; flow
    # edge ids start with "flow:", which no node id does
    edges = [edge(v, u, v) for u, v in sorted(g.edges)]
    if dataflow:
        edges += dataflow_edges(items)
    return {
        "nodes": vis_nodes,
        "edges": edges,
        "selected": selected if selected is not None and selected in g else None,
    }


_VIS_OPTIONS = {
    "physics": {"enabled": False},
    "layout": {"improvedLayout": False},
    "interaction": {"hover": True, "dragNodes": False, "tooltipDelay": 150},
    "edges": {
        "arrows": {"to": {"enabled": True, "scaleFactor": 0.5}},
        "smooth": False,
        "color": {"color": "#9a9a9a"},
    },
    "nodes": {"font": {"size": 12}},
}
# vis-network shows a string title via innerText; as titles arrive escaped, turn them back into
# text elements; skipped when pyvis chose its innerHTML "tooltip_link" popup (a title with href).
_TITLE_FIX = """<script>
(function () {
  if (typeof nodes === "undefined" || document.querySelector("div.popup")) return;
  var up = [];
  nodes.forEach(function (n) {
    if (typeof n.title !== "string") return;
    var d = document.createElement("div");
    d.style.whiteSpace = "pre-wrap";
    d.textContent = n.title.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    up.push({ id: n.id, title: d });
  });
  nodes.update(up);
})();
</script>
"""
_EXTERNAL_TAG = re.compile(
    r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>"
    r"|<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>",
    re.IGNORECASE,
)


def standalone_html(nodes: Iterable[Node], title: str) -> str:
    """One offline HTML file of the graph, built with pyvis with vis-network inlined."""
    from pyvis.network import Network  # slow import (IPython); only the export needs it

    payload = vis_payload(nodes, dataflow=False)  # tree edges only in the export
    net = Network(height="92vh", width="100%", directed=True, cdn_resources="in_line", heading="")
    net.set_options(json.dumps(_VIS_OPTIONS))
    for vn in payload["nodes"]:
        # "group" left out: pyvis pages let vis-network's group palette override our colours
        attrs = {k: v for k, v in vn.items() if k not in ("id", "label", "shape", "color", "group")}
        net.add_node(vn["id"], label=vn["label"], shape=vn["shape"], color=vn["color"], **attrs)
    for e in payload["edges"]:
        net.add_edge(e["from"], e["to"])
    page = net.generate_html()
    # pyvis 0.3.2 still links bootstrap from cdn.jsdelivr.net in in_line mode (issue #229)
    page = _EXTERNAL_TAG.sub("", page)
    page = page.replace("<head>", f"<head>\n<title>{html.escape(title)}</title>", 1)
    page = page.replace("<body>", f"<body>\n<h3>{html.escape(title)}</h3>", 1)
    return page.replace("</body>", _TITLE_FIX + "</body>", 1)
