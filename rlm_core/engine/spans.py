"""Where text of the original context occurs: an index that finds a run of the context inside
any text, and every place the run occurs in the context. Deciding which place a piece of a
prompt came from is engine/provenance.py.

The index samples the context: the 64-character window at every multiple of 64 (with every
place each window occurs) and, built on first need, the first 32 characters of every line. A
run at least SURE (127) characters long always holds a whole sampled window, so it is found and
so is every place it occurs. Shorter runs are found when they are whole lines of the context, or
when the whole text looked up is that short (a direct search, within a scan budget).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from rlm_core.context import flatten

K = 64
STEP = 64
SURE = K + STEP - 1
"""Every occurrence of a run this long holds one of the sampled windows."""
LINE_KEY = 32
"""Lines are indexed by their first LINE_KEY characters (all of a shorter line)."""
MIN_SHORT = 16
"""Shorter runs are never placed: they match by chance."""
MAX_PLACES = 1_000
"""Places listed per run; a run found more often is reported as occurring at least this often."""
MAX_SEED_PLACES = 64
"""A sampled window found at more places than this is too common to start a match from."""
LINE_INDEX_MAX_CHARS = 64 * 2**20
"""Beyond this size the line index (about 100 bytes per line) is not built."""
SCAN_BUDGET_CHARS = 2_000_000_000
"""Characters all direct searches of one index may scan (about a second per 2 GB)."""


class ContextIndex:
    """Built lazily on first use (a 100 MB context takes about a second), then shared."""

    def __init__(self, context: Any) -> None:
        self.text, self.offsets = flatten(context)
        self._first: dict[str, int] | None = None
        self._more: dict[str, list[int]] = {}
        self._lines: dict[str, int] | None = None
        self._more_lines: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._scan_left = SCAN_BUDGET_CHARS
        self.memo: dict[str, Any] = {}
        """What short texts were found to hold, kept by provenance.py for reuse (a batch's
        prompts share their template)."""

    def windows(self) -> dict[str, int]:
        """Sampled window -> its first position (`window_places` has them all)."""
        if self._first is not None:  # built: no lock on the hot path
            return self._first
        with self._lock:
            if self._first is None:
                text, first, more = self.text, dict[str, int](), self._more
                for i in range(0, len(text) - K + 1, STEP):
                    at = first.setdefault(text[i : i + K], i)
                    if at != i:
                        more.setdefault(text[i : i + K], [at]).append(i)
                self._first = first
            return self._first

    def _line_starts(self) -> dict[str, int]:
        with self._lock:
            if self._lines is None:
                text, first, more = self.text, dict[str, int](), self._more_lines
                if len(text) <= LINE_INDEX_MAX_CHARS:
                    at = 0
                    while at < len(text):
                        end = text.find("\n", at)
                        end = len(text) if end < 0 else end
                        key = text[at : min(end, at + LINE_KEY)]
                        if (seen := first.setdefault(key, at)) != at:
                            more.setdefault(key, [seen]).append(at)
                        at = end + 1
                self._lines = first
            return self._lines

    def window_places(self, window: str) -> Sequence[int]:
        """Sampled positions whose K characters are `window`."""
        at = self.windows().get(window)
        return () if at is None else self._more.get(window) or (at,)

    def line_places(self, head: str) -> Sequence[int]:
        """Line starts whose first LINE_KEY characters (or whole line) are `head`."""
        at = self._line_starts().get(head)
        return () if at is None else self._more_lines.get(head) or (at,)

    def is_line(self, start: int, end: int) -> bool:
        text = self.text
        return (start == 0 or text[start - 1] == "\n") and (end == len(text) or text[end] == "\n")

    def places(self, start: int, end: int) -> list[int] | None:
        """Every start of text[start:end] in the text (sorted, at most MAX_PLACES), or None when
        they cannot be listed: a run shorter than SURE that is not a whole line, once the scan
        budget is spent. A whole line shorter than SURE is looked for among whole lines."""
        length, text = end - start, self.text
        run = text[start:end]
        if length >= SURE:
            found, first, more = {start}, self.windows(), self._more
            for phase in range(STEP):  # every other occurrence holds a sampled window at a phase
                window = run[phase : phase + K]
                seen = first.get(window)
                if seen is None or (seen == start + phase and window not in more):
                    continue  # the run's own window, found nowhere else
                for at in more.get(window) or (seen,):
                    q = at - phase
                    if q not in found and q >= 0 and text.startswith(run, q):
                        found.add(q)
                        if len(found) >= MAX_PLACES:
                            return sorted(found)
            return sorted(found)
        if self.is_line(start, end) and len(text) <= LINE_INDEX_MAX_CHARS:
            return [
                q
                for q in self.line_places(run[:LINE_KEY].partition("\n")[0])
                if text.startswith(run, q) and self.is_line(q, q + length)
            ][:MAX_PLACES]
        return self.find_all(run)

    def find_all(self, run: str) -> list[int] | None:
        """Every start of `run` by direct search, within the scan budget (None past it)."""
        if self._scan_left < len(self.text):
            return None
        self._scan_left -= len(self.text)
        found: list[int] = []
        at = self.text.find(run)
        while at >= 0 and len(found) < MAX_PLACES:
            found.append(at)
            at = self.text.find(run, at + 1)
        return found


def forward(a: str, ai: int, b: str, bi: int, limit: int) -> int:
    """Length of the common run of a[ai:] and b[bi:], at most `limit`: blocks that double while
    they match and halve when they do not, so a long run costs a few big comparisons."""
    limit = min(limit, len(a) - ai, len(b) - bi)
    n, step = 0, 32
    while n < limit:
        if step > limit - n:
            step = limit - n
        if a[ai + n : ai + n + step] == b[bi + n : bi + n + step]:
            n, step = n + step, step * 2
        elif step == 1:
            break
        else:
            step //= 2
    return n


def backward(a: str, ai: int, b: str, bi: int, limit: int) -> int:
    """Length of the common run ending at a[ai] and b[bi] (exclusive), at most `limit`."""
    limit = min(limit, ai, bi)
    n, step = 0, 32
    while n < limit:
        if step > limit - n:
            step = limit - n
        if a[ai - n - step : ai - n] == b[bi - n - step : bi - n]:
            n, step = n + step, step * 2
        elif step == 1:
            break
        else:
            step //= 2
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


def map_spans(spans: list[list[int]], pieces: list[tuple[int, int, int]]) -> list[list[int]]:
    """Ranges of a derived text as ranges of the original; parts outside every piece drop out."""
    return merge_spans(
        [orig + max(s, lo) - lo, orig + min(e, hi) - lo]
        for s, e in spans
        for lo, hi, orig in pieces
        if max(s, lo) < min(e, hi)
    )
