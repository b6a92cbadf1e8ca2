"""Positions in the original context for one RLM (the root, or a child): its own context is a
piece of the original (or text around pieces of it), so what its REPL worker reports (reads,
copies, where the pieces of a prompt came from) is mapped into the original's coordinates, and
the text it sends on is placed there (engine/provenance.py) with everything the run knows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rlm_core.engine.provenance import Hints, Placement, place
from rlm_core.engine.spans import ContextIndex, map_spans, merge_spans
from rlm_core.repl.sandbox import spans as valid_spans

Pieces = list[tuple[int, int, int]]
"""(start, end) in this RLM's context text -> start in the original."""


class Positions:
    def __init__(self, index: ContextIndex, pieces: Pieces | None) -> None:
        """`pieces`: where a child's context sits in the original (None for the root RLM,
        whose context is the original)."""
        self.index, self._pieces = index, pieces
        self._lock = threading.Lock()
        self._run: list[list[int]] = []
        self._cell: list[list[int]] = []

    def original(self, spans: list[list[int]]) -> list[list[int]]:
        """Ranges of this RLM's context as ranges of the original; text that is not a piece of
        the original drops out."""
        if self._pieces is None or not spans:
            return spans
        return map_spans(spans, self._pieces)

    def exact(self, froms: Any) -> list[list[int]]:
        """The worker's [start in the text, end, place in this context] triples, with places in
        the original (a triple spanning two pieces of a child's context becomes two)."""
        triples = [
            list(t)
            for t in (froms if isinstance(froms, list) else [])
            if isinstance(t, list) and len(t) == 3 and all(type(v) is int for v in t)
        ]
        if self._pieces is None:
            return triples
        out = []
        for at, end, start in triples:
            stop = start + end - at
            for lo, hi, orig in self._pieces:
                a, b = max(start, lo), min(stop, hi)
                if a < b:
                    out.append([at + a - start, at + b - start, orig + a - lo])
        return out

    def copied(self, delta: Any) -> list[list[list[int]]]:
        """The copy hints for a sub-call, broadest first: what the run's code copied so far,
        what this cell copied, what it copied since the previous sub-call (`delta`)."""
        recent = merge_spans(self.original(valid_spans(delta)))
        with self._lock:
            self._cell = merge_spans(self._cell + recent)
            cell, run = self._cell, merge_spans(self._run + self._cell)
        return [tier for tier in (run, cell, recent) if tier]

    def cell_done(self, copies: list[list[int]]) -> None:
        """A cell ended: its copies join the run's."""
        with self._lock:
            self._run = merge_spans(self._run + self._cell + self.original(copies))
            self._cell = []

    def locate(
        self, text: str, froms: Any = None, copied: Sequence[Sequence[Sequence[int]]] = ()
    ) -> Placement:
        """Where `text` (a prompt, a child's context, a cell's output) sits in the original."""
        return place(text, self.index, Hints(self.exact(froms), copied))
