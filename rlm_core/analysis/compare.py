"""Line two runs up side by side: which root iterations, code cells and sub-calls correspond,
and where the two runs first went different ways. Pure functions over trace nodes; no Streamlit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rlm_core.analysis.matching import match_subs, similarity
from rlm_core.types import Node, RunSummary

T = TypeVar("T")

MATCH_BASE = 0.5
"""Every aligned pair scores at least this, so alignment prefers pairing by order over gaps and
uses similarity only to decide where one side inserted or dropped an iteration or a cell."""
SAME_PLACE = 0.3
"""Bonus for a pair at the same position on both sides: a fork's edited turn pairs with the
turn it replaced even when it happens to resemble a later one more."""
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "run": (("question", "input"),),
    "lm": (("response", "output"),),
    "code": (("code", "code"), ("output", "stdout"), ("error", "error")),
    "llm_query": (("prompt", "input"), ("answer", "output"), ("slices", "context_spans")),
    "rlm_query": (("prompt", "input"), ("answer", "output"), ("slices", "context_spans")),
    "final": (("answer", "output"),),
}
"""What is compared per kind (shown name, Node attribute). A run's answer is its final node's;
tokens, cost and time always differ between live calls, so they go to the summary instead."""
SUB_KINDS = ("llm_query", "rlm_query")


@dataclass(frozen=True)
class Pair:
    """One row of the alignment: a node of each run that correspond, or one left unmatched."""

    kind: str
    where: str
    """Position in our own words (iteration / cell / sub-call numbers): no trace text."""
    left: Node | None
    right: Node | None
    differences: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return self.left is not None and self.right is not None

    @property
    def same(self) -> bool:
        return self.matched and not self.differences


@dataclass
class Comparison:
    pairs: list[Pair] = field(default_factory=list)
    first_divergence: int | None = None
    """Index in `pairs` (execution order) of the first pair that differs or is unmatched."""

    @property
    def divergence(self) -> Pair | None:
        return None if self.first_divergence is None else self.pairs[self.first_divergence]


# ---- similarity -------------------------------------------------------------------------------


def align(
    left: Sequence[T], right: Sequence[T], sim: Callable[[T, T], float]
) -> list[tuple[T | None, T | None]]:
    """Order-preserving alignment maximising the summed MATCH_BASE + similarity (+ SAME_PLACE)
    of its pairs."""
    n, m = len(left), len(right)
    sims = [
        [sim(a, b) + (SAME_PLACE if i == j else 0.0) for j, b in enumerate(right)]
        for i, a in enumerate(left)
    ]
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            pair = MATCH_BASE + sims[i][j] + score[i + 1][j + 1]
            score[i][j] = max(pair, score[i + 1][j], score[i][j + 1])
    out: list[tuple[T | None, T | None]] = []
    i = j = 0
    while i < n and j < m:
        if score[i][j] == MATCH_BASE + sims[i][j] + score[i + 1][j + 1]:
            out.append((left[i], right[j]))
            i, j = i + 1, j + 1
        elif score[i][j] == score[i + 1][j]:
            out.append((left[i], None))
            i += 1
        else:
            out.append((None, right[j]))
            j += 1
    out += [(x, None) for x in left[i:]] + [(None, y) for y in right[j:]]
    return out


# ---- the run trees ----------------------------------------------------------------------------


def value(node: Node, name: str) -> Any:
    """The compared value of one of FIELDS' attributes (spans as plain lists)."""
    raw = getattr(node, name)
    if name == "context_spans":
        return [[int(s), int(e)] for s, e in raw or []]
    return raw or None


def differences(a: Node, b: Node) -> tuple[str, ...]:
    return tuple(
        shown for shown, attr in FIELDS.get(a.kind, ()) if value(a, attr) != value(b, attr)
    )


@dataclass
class _Turn:
    number: int | None
    lm: Node | None = None
    cells: list[Node] = field(default_factory=list)

    def text(self) -> str:
        if self.lm is not None:
            return self.lm.output or ""
        return "\n".join(c.code or "" for c in self.cells)


def _int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _num(raw: Any) -> str:
    got = _int(raw)
    return "?" if got is None else str(got)


class _Tree:
    def __init__(self, nodes: Iterable[Node]) -> None:
        self.kids: dict[str | None, list[Node]] = defaultdict(list)
        self.roots: list[Node] = []
        items = sorted(nodes, key=lambda n: n.node_id)
        ids = {n.node_id for n in items}
        for n in items:
            if n.parent_id in ids and n.parent_id != n.node_id:
                self.kids[n.parent_id].append(n)
            elif n.kind == "run":
                self.roots.append(n)

    def turns(self, run: Node) -> list[_Turn]:
        """The run's iterations: each lm call with the code cells its response held."""
        turns: list[_Turn] = []
        for n in self.kids[run.node_id]:
            it = _int(n.meta.get("iteration"))
            if n.kind == "lm":
                turns.append(_Turn(it, lm=n))
            elif n.kind == "code":
                if not turns or (it is not None and turns[-1].number != it):
                    turns.append(_Turn(it))
                turns[-1].cells.append(n)
        return turns

    def finals(self, run: Node) -> list[Node]:
        return [n for n in self.kids[run.node_id] if n.kind == "final"]

    def subs(self, cell: Node) -> list[Node]:
        return sorted(
            (n for n in self.kids[cell.node_id] if n.kind in SUB_KINDS),
            key=lambda n: (
                str(n.meta.get("batch") or n.node_id),
                _int(n.meta.get("batch_index")) or 0,
                n.node_id,
            ),
        )

    def child_run(self, call: Node) -> Node | None:
        return next((n for n in self.kids[call.node_id] if n.kind == "run"), None)

    def subtree(self, node: Node) -> list[Node]:
        out, stack = [], [node]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(reversed(self.kids[n.node_id]))
        return out


class _Aligner:
    def __init__(self, left: Iterable[Node], right: Iterable[Node]) -> None:
        self.lt, self.rt = _Tree(left), _Tree(right)
        self.pairs: list[Pair] = []

    def pair(self, kind: str, where: str, a: Node | None, b: Node | None) -> None:
        diffs = differences(a, b) if a is not None and b is not None else ()
        self.pairs.append(Pair(kind, where, a, b, diffs))

    def alone(self, node: Node, left: bool, where: str) -> None:
        """A node with no counterpart, and everything under it."""
        tree = self.lt if left else self.rt
        for n in tree.subtree(node):
            it = n.meta.get("iteration") if n.kind in ("lm", "code") else None
            label = where if n is node else f"{where} › {n.kind}"
            label += f" {_num(it)}" if it is not None and n is not node else ""
            self.pair(n.kind, label, n if left else None, None if left else n)

    def run(self, a: Node, b: Node, prefix: str) -> None:
        self.pair("run", prefix or "run", a, b)
        lead = f"{prefix} › " if prefix else ""
        turns = align(
            self.lt.turns(a), self.rt.turns(b), lambda x, y: similarity(x.text(), y.text())
        )
        for ta, tb in turns:
            self.turn(ta, tb, lead)
        finals = align(
            self.lt.finals(a), self.rt.finals(b), lambda x, y: similarity(x.output, y.output)
        )
        for fa, fb in finals:
            self.pair("final", f"{lead}final answer", fa, fb)

    def turn(self, ta: _Turn | None, tb: _Turn | None, lead: str) -> None:
        nums = sorted({_num(t.number) for t in (ta, tb) if t is not None})
        where = f"{lead}iteration {'↔'.join(nums)}"
        if ta is None or tb is None:
            one = ta or tb
            assert one is not None
            if one.lm is not None:
                self.alone(one.lm, ta is not None, where)
            for k, cell in enumerate(one.cells, 1):
                self.alone(cell, ta is not None, f"{where} · cell {k}")
            return
        if ta.lm is not None or tb.lm is not None:
            if ta.lm is not None and tb.lm is not None:
                self.pair("lm", where, ta.lm, tb.lm)
            else:
                self.alone(ta.lm or tb.lm, ta.lm is not None, where)  # type: ignore[arg-type]
        cells = align(ta.cells, tb.cells, lambda x, y: similarity(x.code, y.code))
        for k, (ca, cb) in enumerate(cells, 1):
            cell_where = f"{where} · cell {k}"
            if ca is None or cb is None:
                self.alone(ca or cb, ca is not None, cell_where)  # type: ignore[arg-type]
                continue
            self.pair("code", cell_where, ca, cb)
            self.subs(ca, cb, cell_where)

    def subs(self, ca: Node, cb: Node, where: str) -> None:
        for k, (sa, sb) in enumerate(match_subs(self.lt.subs(ca), self.rt.subs(cb)), 1):
            kind = (sa or sb).kind  # type: ignore[union-attr]
            sub_where = f"{where} · {kind} {k}"
            if sa is None or sb is None:
                self.alone(sa or sb, sa is not None, sub_where)  # type: ignore[arg-type]
                continue
            self.pair(kind, sub_where, sa, sb)
            ra, rb = self.lt.child_run(sa), self.rt.child_run(sb)
            if ra is not None and rb is not None:
                self.run(ra, rb, f"{sub_where} › child run")
            elif ra is not None or rb is not None:
                self.alone(ra or rb, ra is not None, f"{sub_where} › child run")  # type: ignore[arg-type]


def compare_runs(left: Iterable[Node], right: Iterable[Node]) -> Comparison:
    """Align two run trees (nodes with full texts) and find their first divergence."""
    aligner = _Aligner(left, right)
    la, ra = aligner.lt.roots, aligner.rt.roots
    if la and ra:
        aligner.run(la[0], ra[0], "")
    else:
        for root in la:
            aligner.alone(root, True, "run")
        for root in ra:
            aligner.alone(root, False, "run")
    pairs = aligner.pairs
    first = next((i for i, p in enumerate(pairs) if not p.same), None)
    return Comparison(pairs, first)


# ---- the run summaries -----------------------------------------------------------------------


def _tokens(run: RunSummary) -> int | None:
    if run.tokens_in is None and run.tokens_out is None:
        return None
    return run.tokens


def _seconds(run: RunSummary) -> float | None:
    end = run.ended_at
    return None if end is None else round(max(0.0, end - run.created_at), 2)


SUMMARY: tuple[tuple[str, Callable[[RunSummary], Any]], ...] = (
    ("answer", lambda r: r.answer),
    ("status", lambda r: r.status),
    ("iterations", lambda r: r.iterations),
    ("model calls", lambda r: r.llm_calls),
    ("tokens", _tokens),
    ("cost (USD)", lambda r: r.cost_usd),
    ("time (s)", _seconds),
)


def summary(left: RunSummary, right: RunSummary) -> list[dict[str, Any]]:
    """One row per measure: both values (None = unknown) and whether they differ."""
    rows = []
    for name, get in SUMMARY:
        a, b = get(left), get(right)
        rows.append({"measure": name, "left": a, "right": b, "differs": a != b})
    return rows
