"""The tree of a run as a networkx graph, and its tidy tree layout (positions in pixels).

Computed in Python rather than in the browser because vis-network's hierarchical layout blocks
the page for seconds at a few thousand nodes (STACK.md 2.6). O(n) in the number of nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from rlm_core.types import Node

X_SPACING = 90.0
Y_SPACING = 110.0
BATCH_WRAP = 12
"""Batches bigger than this are laid out as a grid of rows this wide under their code cell."""

_SUMMARY_FIELDS = (
    "run_id",
    "parent_id",
    "kind",
    "depth",
    "seq",
    "status",
    "started_at",
    "ended_at",
    "model",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_s",
)


def build_graph(nodes: Iterable[Node]) -> nx.DiGraph:
    """A parent -> child DiGraph; nodes whose parent is absent become roots."""
    g: nx.DiGraph = nx.DiGraph()
    items = sorted(nodes, key=lambda n: n.node_id)
    for n in items:
        attrs: dict[str, Any] = {f: getattr(n, f) for f in _SUMMARY_FIELDS}
        attrs["error"] = bool(n.error)
        for k in ("batch", "batch_index", "batch_size", "iteration"):
            attrs[k] = n.meta.get(k) if n.meta else None
        g.add_node(n.node_id, **attrs)
    for n in items:
        if n.parent_id is not None and n.parent_id in g and n.parent_id != n.node_id:
            g.add_edge(n.parent_id, n.node_id)
    return g


def _tree(g: nx.DiGraph) -> tuple[list[str], list[str], dict[str, list[str]], dict[str, str]]:
    """Roots, preorder, children and parents, all in node_id order; cycles are cut, not followed."""
    order = sorted(g.nodes)
    kids: dict[str, list[str]] = {u: [] for u in order}
    for v in order:  # appending in sorted order keeps every child list sorted without re-sorting
        for p in g.predecessors(v):
            kids[p].append(v)
    seen: set[str] = set()
    roots: list[str] = []
    pre: list[str] = []
    children: dict[str, list[str]] = {}
    parent: dict[str, str] = {}
    # a node reachable only through a cycle (corrupt parent ids) becomes an extra root
    starts = [v for v in order if g.in_degree(v) == 0] + order
    for start in starts:
        if start in seen:
            continue
        roots.append(start)
        seen.add(start)
        stack = [start]
        while stack:
            u = stack.pop()
            pre.append(u)
            cs = [c for c in kids[u] if c not in seen]
            seen.update(cs)
            children[u] = cs
            parent.update((c, u) for c in cs)
            stack.extend(reversed(cs))
    return roots, pre, children, parent


def _units(g: nx.DiGraph, cs: list[str]) -> list[list[str]]:
    """Split ordered children into units: one child each, or one big batch kept together."""
    counts: dict[Any, int] = {}
    for c in cs:
        b = g.nodes[c].get("batch")
        if b is not None:
            counts[b] = counts.get(b, 0) + 1
    units: list[list[str]] = []
    grids: dict[Any, list[str]] = {}
    for c in cs:
        b = g.nodes[c].get("batch")
        if b is not None and counts[b] > BATCH_WRAP:
            if b not in grids:
                grids[b] = []
                units.append(grids[b])  # the grid sits where its first member would have been
            grids[b].append(c)
        else:
            units.append([c])
    return units


def tree_layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Tidy tree positions in pixels: leaves on even slots, parents centred over their children.

    Every subtree gets a block of slots of its own, so no two nodes share a spot. Big batches become
    a grid of subtree blocks; row r starts below the deepest node of rows above it.
    """
    roots, pre, children, parent = _tree(g)
    width: dict[str, float] = {}
    height: dict[str, int] = {}
    xin: dict[str, float] = {}  # the node's x inside its own block
    rel: dict[str, tuple[float, int]] = {}  # block left and level, relative to the parent's
    for u in reversed(pre):  # every child comes before its parent in reversed preorder
        cs = children[u]
        if not cs:
            width[u], height[u], xin[u] = 1.0, 1, 0.5
            continue
        offset, deepest = 0.0, 0
        for unit in _units(g, cs):
            if len(unit) == 1:
                c = unit[0]
                rel[c] = (offset, 1)
                offset += width[c]
                deepest = max(deepest, height[c])
                continue
            rows = [unit[i : i + BATCH_WRAP] for i in range(0, len(unit), BATCH_WRAP)]
            cols = [max(width[r[i]] for r in rows if i < len(r)) for i in range(len(rows[0]))]
            # rows of plain leaves are staggered by half a slot so that edges to a lower row
            # pass between the nodes of the row above instead of through them
            stagger = 0.5 if all(not children[c] for c in unit) else 0.0
            level = 1
            for r, row in enumerate(rows):
                left = offset + (stagger if r % 2 else 0.0)
                for i, c in enumerate(row):
                    rel[c] = (left + (cols[i] - width[c]) / 2, level)
                    left += cols[i]
                level += max(height[c] for c in row)
            offset += sum(cols) + (stagger if len(rows) > 1 else 0.0)
            deepest = max(deepest, level - 1)
        xs = [rel[c][0] + xin[c] for c in cs]
        width[u], height[u], xin[u] = offset, 1 + deepest, (min(xs) + max(xs)) / 2

    pos: dict[str, tuple[float, float]] = {}
    left_of: dict[str, float] = {}
    level_of: dict[str, int] = {}
    offset = 0.0
    for root in roots:
        left_of[root], level_of[root] = offset, 0
        offset += width[root]
    for u in pre:
        if u not in left_of:
            p = parent[u]  # precedes u in preorder, so its block is already placed
            dx, dl = rel[u]
            left_of[u], level_of[u] = left_of[p] + dx, level_of[p] + dl
        pos[u] = ((left_of[u] + xin[u]) * X_SPACING, level_of[u] * Y_SPACING)
    return pos
