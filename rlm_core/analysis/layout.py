"""The tree of a run as a networkx graph, and its tidy tree layout (positions in pixels).

Computed in Python rather than in the browser because vis-network's hierarchical layout blocks
the page for seconds at a few thousand nodes (STACK.md 2.6). O(n) in the number of nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import networkx as nx

from rlm_core.types import Node

X_SPACING = 90.0
Y_SPACING = 110.0
BATCH_WRAP = 12
"""Batches bigger than this are laid out as a grid of rows this wide under their code cell."""
WRAP_MIN = 12
"""In the outline view, siblings up to this many stay in one row; more wrap into a block."""
ASPECT = 2.2
"""Slots over levels of a wrapped block in the outline view, which is drawn left to right: a
slot is ROW_HEIGHT tall, a level about 150 px wide, and the graph panel 1.2 times as wide as
it is tall."""
ROW_HEIGHT = 58.0
"""A slot of the left-to-right layout: a node with its label under it."""
LEVEL_GAP = 36.0

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
    return spanning_tree(order, kids)


def spanning_tree(
    order: list[str], kids: dict[str, list[str]]
) -> tuple[list[str], list[str], dict[str, list[str]], dict[str, str]]:
    """Roots, preorder, children and parents of the links in `kids`, starting in `order`; a
    node reachable only through a cycle (corrupt parent ids) becomes an extra root, and no node
    is visited twice."""
    has_parent = {c for cs in kids.values() for c in cs}
    seen: set[str] = set()
    roots: list[str] = []
    pre: list[str] = []
    children: dict[str, list[str]] = {}
    parent: dict[str, str] = {}
    for start in [v for v in order if v not in has_parent] + order:
        if start in seen:
            continue
        roots.append(start)
        seen.add(start)
        stack = [start]
        while stack:
            u = stack.pop()
            pre.append(u)
            cs = [c for c in kids.get(u, []) if c not in seen]
            seen.update(cs)
            children[u] = cs
            parent.update((c, u) for c in cs)
            stack.extend(reversed(cs))
    return roots, pre, children, parent


Rows = list[list[str]]
"""Children laid out as a block: one row, or several rows under each other."""


def _batch_units(g: nx.DiGraph, cs: list[str]) -> list[Rows]:
    """Ordered children as blocks: one child each, or a big batch as rows of BATCH_WRAP."""
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
    return [[u[i : i + BATCH_WRAP] for i in range(0, len(u), BATCH_WRAP)] for u in units]


def tree_layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Tidy tree positions in pixels of a whole run: big batches become grids under their cell."""
    roots, pre, children, _ = _tree(g)
    slots = place(roots, pre, children, lambda u, cs, w, h: _batch_units(g, cs))
    return {u: (x * X_SPACING, level * Y_SPACING) for u, (x, level) in slots.items()}


def square_rows(cs: list[str], width: dict[str, float], height: dict[str, int]) -> list[Rows]:
    """A long list of leaves (the members of an open group) as one block whose rows make it
    about as wide as a graph panel is, instead of a strip; anything else stays one row (edges to
    wrapped subtrees would cross them)."""
    if len(cs) <= WRAP_MIN or any(height[c] > 1 or width[c] > 1 for c in cs):
        return [[[c]] for c in cs]
    area = sum(width[c] * height[c] for c in cs)
    target = max(max(width[c] for c in cs), round((area * ASPECT) ** 0.5))
    rows: Rows = [[]]
    used = 0.0
    for c in cs:
        if rows[-1] and used + width[c] > target:
            rows.append([])
            used = 0.0
        rows[-1].append(c)
        used += width[c]
    return [rows]


def left_to_right(
    slots: dict[str, tuple[float, int]], widths: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """(slot, level) positions in pixels with depth going right: each level as wide as its
    widest item (`widths`: of a node's label or a group's box), a slot ROW_HEIGHT tall."""
    widest: dict[int, float] = {}
    for u, (_, level) in slots.items():
        widest[level] = max(widest.get(level, 0.0), widths[u])
    x: dict[int, float] = {}
    left = 0.0
    for level in range(max(widest, default=0) + 1):
        if level:
            left += (widest.get(level - 1, 0.0) + widest.get(level, 0.0)) / 2 + LEVEL_GAP
        x[level] = left
    return {
        u: (round(x[level], 1), round(slot * ROW_HEIGHT, 1)) for u, (slot, level) in slots.items()
    }


UnitsOf = Callable[[str, list[str], dict[str, float], dict[str, int]], list[Rows]]


def place(
    roots: list[str], pre: list[str], children: dict[str, list[str]], units_of: UnitsOf
) -> dict[str, tuple[float, int]]:
    """Tidy tree positions as (slot, level): leaves on even slots, parents centred over their
    children; the caller turns them into pixels (top-down or left to right).

    Every subtree gets a block of slots of its own, so no two nodes share a spot. `units_of`
    cuts a node's children into blocks of one or more rows; row r of a block starts below the
    deepest node of the rows above it.
    """
    parent = {c: u for u in pre for c in children[u]}
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
        for rows in units_of(u, cs, width, height):
            if len(rows) == 1 and len(rows[0]) == 1:
                c = rows[0][0]
                rel[c] = (offset, 1)
                offset += width[c]
                deepest = max(deepest, height[c])
                continue
            span = range(max(len(r) for r in rows))
            cols = [max(width[r[i]] for r in rows if i < len(r)) for i in span]
            # rows of plain leaves are staggered by half a slot so that edges to a lower row
            # pass between the nodes of the row above instead of through them
            unit = [c for r in rows for c in r]
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

    pos: dict[str, tuple[float, int]] = {}
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
        pos[u] = (left_of[u] + xin[u], level_of[u])
    return pos
