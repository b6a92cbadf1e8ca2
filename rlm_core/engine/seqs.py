"""Step numbers of the nodes one RLM writes: in the order they start, except that the calls of
a batch take a block of numbers before any starts and are numbered in batch order, not as
their threads happen to start, so the same run gives the same trace."""

from __future__ import annotations

import threading
from typing import Any


class Seqs:
    def __init__(self) -> None:
        self._next, self._lock = 1, threading.Lock()  # numbers go to the sandbox's call threads
        self._batches: dict[str, int] = {}
        """A batch's first number."""

    def hold(self, batch: str, n: int) -> None:
        """Keep the next `n` numbers for the calls of `batch`."""
        self._batches[batch] = self._take(n)

    def next(self, meta: dict[str, Any]) -> int:
        """The number of a node with this meta (`batch`, `batch_index` for a batch's call)."""
        first = self._batches.get(meta.get("batch", ""))
        if first is None or "batch_index" not in meta:
            return self._take(1)
        return first + int(meta["batch_index"])

    def _take(self, n: int) -> int:
        with self._lock:
            first, self._next = self._next, self._next + n
            return first
