"""Levels of detail for the graph of a run: what folds into one group node (a fan-out of
sub-calls, a child run, a block of turns), which groups are open, and the tree that is drawn.

Pure functions over outline nodes (`TraceStore.outline`: no texts). `Outline` indexes a run once;
`view` decides, per selection and per what the user opened or folded, which groups are open and
what is drawn. The UI keeps the user's choices; nothing here knows Streamlit or vis-network.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from rlm_core.analysis.layout import spanning_tree
from rlm_core.types import Node

BUDGET = 60
"""Nodes the automatic level of detail draws at most. A run this small is drawn node by node; a
bigger one opens its groups level by level while the drawing stays under this, which reads at
fit in the Explorer at 1400x900 (a view the user opens further may hold more)."""
FAN_MIN = 4
"""Sibling sub-calls of one code cell (one batch, or unbatched calls of one kind) that fold."""
CHILD_MIN = 4
"""Nodes of a child run worth folding into one."""
TURNS_MAX = 10
"""Turns of one run drawn one by one; a run with more gets at most this many blocks of turns."""
BLOCK_SIZES = (2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000)
WINDOW = 60
"""Members of an open group drawn at once; the others stand behind 'more' nodes."""
PROBLEMS = ("error", "limit", "interrupted")
GROUP_PREFIX = "~"
"""Drawn ids of groups start with this; node ids are hex and never do."""
SUB_CALLS = ("llm_query", "rlm_query")

_PLAIN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")

GroupKind = Literal["fanout", "child", "turns"]


@dataclass
class Group:
    """Nodes drawn as one until opened. `members` are the top-level nodes; each brings its
    subtree. Figures cover the members (fan-outs) or every node inside (child runs, turns)."""

    id: str
    kind: GroupKind
    anchor: str
    members: list[str]
    parent: str | None = None
    level: int = 0
    size: int = 0
    depth: int = 0
    member_kind: str = ""
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    latency: tuple[float, float] | None = None
    tokens: tuple[int, int] | None = None
    tokens_total: int = 0
    cost: float = 0.0
    turns: tuple[int, int] | None = None
    levels: int = 1
    """Run levels inside (a child run's own, and those of the child runs it started)."""

    @property
    def header(self) -> bool:
        """Open fan-outs and blocks keep a header node (click it to fold); an open child run
        shows its run node instead."""
        return self.kind != "child"


def _block_size(turns: int) -> int:
    return next((s for s in BLOCK_SIZES if -(-turns // s) <= TURNS_MAX), BLOCK_SIZES[-1])


def _spread(values: Iterable[float | int | None]) -> tuple[float, float] | None:
    known = [v for v in values if v is not None]
    return (min(known), max(known)) if known else None


class Outline:
    """One run's outline indexed: step order, the tree, its groups and their figures, and the
    data flow between nodes. Built once per outline (O(n)); `view` is cheap after that."""

    def __init__(self, nodes: Iterable[Node], *, budget: int = BUDGET) -> None:
        items = sorted(nodes, key=lambda n: n.node_id)
        self.budget = budget
        self.by_id = {n.node_id: n for n in items}
        self.order = [n.node_id for n in items]
        kids: dict[str, list[str]] = {}
        for n in items:
            p = n.parent_id
            if p is not None and p in self.by_id and p != n.node_id:
                kids.setdefault(p, []).append(n.node_id)
        self.roots, pre = self._walk(kids)
        self._cells_under_calls(pre)
        size: dict[str, int] = {}
        for u in reversed(pre):  # a drawn child still comes after its parent in the preorder
            size[u] = 1 + sum(size[c] for c in self.children[u])
        self.groups: dict[str, Group] = {}
        grouped = len(items) > budget  # a small run is drawn node by node
        self.units = {
            u: self._units(u, self.children[u], size) if grouped else list(self.children[u])
            for u in pre
        }
        self.member_of = {m: g.id for g in self.groups.values() for m in g.members}
        self.position = {m: i for g in self.groups.values() for i, m in enumerate(g.members)}
        self.up: dict[str, str] = {}
        self.group_of: dict[str, str] = {}
        drawn_pre = self._nest()
        self.inner: dict[str, int] = {}
        for u in reversed(drawn_pre):
            self.inner[u] = 1 + sum(1 if c in self.groups else self.inner[c] for c in self.units[u])
        self._figures(size)
        self.flows = flows(items)

    # ---- building ----------------------------------------------------------------------------

    def _walk(self, kids: dict[str, list[str]]) -> tuple[list[str], list[str]]:
        """Roots and preorder; a node reachable only through a cycle (corrupt parent ids) becomes
        a root of its own, and no node is visited twice."""
        roots, pre, self.children, _ = spanning_tree(self.order, kids)
        return roots, pre

    def _cells_under_calls(self, pre: list[str]) -> None:
        """Draw each code cell under the lm call whose reply held its code (same run, same
        turn) rather than under the run: a run reads as its turns, lm call → code → sub-calls."""
        for u in pre:
            if self.by_id[u].kind != "run":
                continue
            kept: list[str] = []
            call: tuple[str, int] | None = None
            for c in self.children[u]:
                turn = self._turn(c)
                if self.by_id[c].kind == "lm" and turn is not None:
                    call = (c, turn)
                elif self.by_id[c].kind == "code" and call is not None and turn == call[1]:
                    self.children[call[0]].append(c)
                    continue
                kept.append(c)
            self.children[u] = kept

    def _add(self, gid: str, kind: GroupKind, anchor: str, members: list[str]) -> str:
        self.groups[gid] = Group(gid, kind, anchor, members)
        return gid

    def _units(self, u: str, cs: list[str], size: dict[str, int]) -> list[str]:
        """The children of `u` as drawn: nodes, and groups in place of their first member."""
        if not cs:
            return []
        node = self.by_id[u]
        if node.kind == "run":
            return self._turn_units(u, cs)
        if node.kind == "rlm_query":
            return [
                self._add(f"{GROUP_PREFIX}r:{c}", "child", u, [c])
                if self.by_id[c].kind == "run" and size[c] >= CHILD_MIN
                else c
                for c in cs
            ]
        keys = {c: self._fan_key(u, c) for c in cs}
        counts = Counter(k for k in keys.values() if k is not None)
        units: list[str] = []
        for c in cs:
            key = keys[c]
            if key is None or counts[key] < FAN_MIN:
                units.append(c)
            elif key in self.groups:
                self.groups[key].members.append(c)
            else:
                units.append(self._add(key, "fanout", u, [c]))
        return units

    def _fan_key(self, u: str, c: str) -> str | None:
        n = self.by_id[c]
        if n.kind not in SUB_CALLS:
            return None
        batch = n.meta.get("batch")
        if batch is None:
            return f"{GROUP_PREFIX}c:{u}:{n.kind}"
        # our batch ids are hex; an imported trace's can be anything, and ids reach the browser
        text = str(batch)
        plain = text if _PLAIN_ID.fullmatch(text) else hashlib.sha1(text.encode()).hexdigest()
        return f"{GROUP_PREFIX}b:{plain}"

    def _turn_units(self, u: str, cs: list[str]) -> list[str]:
        turns = sorted({t for c in cs if (t := self._turn(c)) is not None})
        if len(turns) <= TURNS_MAX:
            return list(cs)
        per = _block_size(len(turns))
        first = {t: turns[(i // per) * per] for i, t in enumerate(turns)}
        units: list[str] = []
        for c in cs:
            t = self._turn(c)
            if t is None:
                units.append(c)
                continue
            gid = f"{GROUP_PREFIX}t:{u}:{first[t]}"
            if gid in self.groups:
                self.groups[gid].members.append(c)
            else:
                units.append(self._add(gid, "turns", u, [c]))
        return units

    def _turn(self, node_id: str) -> int | None:
        n = self.by_id[node_id]
        it = n.meta.get("iteration")
        return it if n.kind in ("lm", "code") and isinstance(it, int) else None

    def _nest(self) -> list[str]:
        """Walk the drawn tree (groups stand aside for their members): each node's drawn parent
        and innermost group, each group's enclosing group and level. Returns its preorder."""
        drawn_pre: list[str] = []
        stack: list[tuple[str, str | None, str | None]] = [
            (r, None, None) for r in reversed(self.roots)
        ]
        while stack:
            u, up, inside = stack.pop()
            g = self.groups.get(u)
            if g is not None:
                g.parent = inside
                g.level = 0 if inside is None else self.groups[inside].level + 1
                stack.extend((m, up, u) for m in reversed(g.members))
                continue
            drawn_pre.append(u)
            if up is not None:
                self.up[u] = up
            if inside is not None:
                self.group_of[u] = inside
            stack.extend((c, u, inside) for c in reversed(self.units[u]))
        return drawn_pre

    def _figures(self, size: dict[str, int]) -> None:
        for g in self.groups.values():
            first = self.by_id[g.members[0]]
            g.size = sum(size[m] for m in g.members)
            g.depth, g.member_kind = first.depth, first.kind
            counted = g.members if g.kind == "fanout" else list(self._inside(g))
            g.statuses = Counter(self.by_id[m].status for m in counted)
            if g.kind == "child":
                runs = (self.by_id[m].depth for m in counted if self.by_id[m].kind == "run")
                g.levels = max(runs, default=g.depth) - g.depth + 1
            members = [self.by_id[m] for m in g.members]
            g.latency = _spread(m.latency_s for m in members)
            tokens = [_tokens(m) for m in members]
            g.tokens = _spread(tokens)  # type: ignore[assignment]
            if g.kind == "turns":
                turns = [t for m in g.members if (t := self._turn(m)) is not None]
                g.turns = (min(turns), max(turns))
        for node_id in self.order:
            n = self.by_id[node_id]
            for gid in self.path(node_id):
                g = self.groups[gid]
                g.tokens_total += _tokens(n) or 0
                g.cost += n.cost_usd or 0.0
                if n.status in PROBLEMS:
                    g.problems.append(node_id)

    def _inside(self, g: Group) -> Iterator[str]:
        stack = list(reversed(g.members))
        while stack:
            u = stack.pop()
            yield u
            stack.extend(reversed(self.children[u]))

    # ---- reading -----------------------------------------------------------------------------

    def path(self, node_id: str) -> list[str]:
        """The groups that hold `node_id`, innermost first."""
        out = []
        g = self.group_of.get(node_id)
        while g is not None:
            out.append(g)
            g = self.groups[g].parent
        return out

    def member_index(self, gid: str, node_id: str) -> int:
        """Position in the group's members of the member that holds `node_id` (-1: none)."""
        u: str | None = node_id
        while u is not None:
            if self.member_of.get(u) == gid:
                return self.position[u]
            u = self.up.get(u)
        return -1

    def extra(self, gid: str) -> int:
        """Nodes an opened group adds to the drawing (its inner groups folded)."""
        g = self.groups[gid]
        shown = g.members[:WINDOW]
        more = 1 if len(g.members) > WINDOW else 0
        return int(g.header) + sum(self.inner[m] for m in shown) + more - 1

    def target(self, gid: str) -> str:
        """The node to select when a folded group is opened: its first problem, else its
        first member (for a child run: the run node, which sums the run up)."""
        g = self.groups[gid]
        return g.problems[0] if g.problems else g.members[0]


def _tokens(n: Node) -> int | None:
    if n.tokens_in is None and n.tokens_out is None:
        return None
    return (n.tokens_in or 0) + (n.tokens_out or 0)


def flows(items: Iterable[Node]) -> list[tuple[str, str, str]]:
    """(sub-call, code cell or FINAL, variable) for every answer that reached a variable of a
    cell or the final answer (`meta.assignments`, `meta.sources`)."""
    out = []
    for n in items:
        if n.kind == "code":
            assignments = n.meta.get("assignments")
            for var, ids in (assignments if isinstance(assignments, dict) else {}).items():
                out += [(str(s), n.node_id, str(var)) for s in _items(ids)]
        elif n.kind == "final":
            sources = n.meta.get("sources")
            var = str(n.meta.get("var") or "FINAL")
            out += [(str(s), n.node_id, var) for s in _items(sources)]
    return out


def _items(value: object) -> list[object]:
    """A list from a stored trace, or nothing (an imported trace can hold anything there)."""
    return value if isinstance(value, list) else []
