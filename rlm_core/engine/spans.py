"""Which character ranges of the original context appear verbatim in a piece of text.

A sparse k-gram index of the context (one anchor every STEP characters) finds candidate
positions in O(len(text)); each hit is verified and extended both ways. Matches shorter than
about 2*STEP characters can be missed: prompts carry slices, not stray phrases.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from rlm_core.context import flatten

K = 64
STEP = 64
MIN_SHORT = 16
"""Shorter pieces are not looked up at all: they match by chance."""
_BLOCK = 4096


class ContextIndex:
    """Built lazily on first use (a 100 MB context takes about a second), then shared."""

    def __init__(self, context: Any) -> None:
        self.text, self.offsets = flatten(context)
        self._anchors: dict[str, int] | None = None
        self._lock = threading.Lock()

    def _index(self) -> dict[str, int]:
        with self._lock:
            if self._anchors is None:
                text, anchors = self.text, dict[str, int]()
                for i in range(0, len(text) - K + 1, STEP):
                    anchors.setdefault(text[i : i + K], i)
                self._anchors = anchors
            return self._anchors

    def spans(self, piece: str) -> list[list[int]]:
        """Sorted, merged [start, end) ranges of the context found verbatim in `piece`."""
        if len(piece) < 2 * K:
            # too short to be sure of an anchor: look for the whole piece (one scan)
            at = self.text.find(piece) if len(piece) >= MIN_SHORT else -1
            return [[at, at + len(piece)]] if at >= 0 else []
        anchors, text, found = self._index(), self.text, []
        j, last = 0, len(piece) - K
        while j <= last:
            i = anchors.get(piece[j : j + K])
            if i is None:
                j += 1
                continue
            back = _common_suffix(piece, j, text, i)
            fwd = _common_prefix(piece, j, text, i)
            found.append([i - back, i + fwd])
            j += fwd
        return merge_spans(found)


def _common_prefix(a: str, ai: int, b: str, bi: int) -> int:
    n = 0
    while True:
        x, y = a[ai + n : ai + n + _BLOCK], b[bi + n : bi + n + _BLOCK]
        if x == y and len(x) == _BLOCK:
            n += _BLOCK
            continue
        m = min(len(x), len(y))
        k = 0
        while k < m and x[k] == y[k]:
            k += 1
        return n + k


def _common_suffix(a: str, ai: int, b: str, bi: int) -> int:
    n = 0
    while ai - n > 0 and bi - n > 0 and a[ai - n - 1] == b[bi - n - 1]:
        n += 1
    return n


def merge_spans(spans: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sorted [start, end) ranges with overlapping and touching ones joined; empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted([int(s[0]), int(s[1])] for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def pieces_of_original(text: str, index: ContextIndex) -> list[tuple[int, int, int]]:
    """(start, end, original start) of each piece of `text` found verbatim in the original."""
    found = ((text.find(index.text[a:b]), a, b) for a, b in index.spans(text))
    return [(at, at + b - a, a) for at, a, b in found if at >= 0]


def map_spans(spans: list[list[int]], pieces: list[tuple[int, int, int]]) -> list[list[int]]:
    """Ranges of a derived text as ranges of the original; parts outside every piece drop out."""
    return merge_spans(
        [orig + max(s, lo) - lo, orig + min(e, hi) - lo]
        for s, e in spans
        for lo, hi, orig in pieces
        if max(s, lo) < min(e, hi)
    )
