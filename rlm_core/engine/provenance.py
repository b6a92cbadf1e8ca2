"""Which places of the original context a text holds (a sub-call's prompt, a child's context,
what a cell printed), and only those it is sure of.

Everything the run knows is used, most certain first:
1. pieces the REPL worker followed from `context` into the text (slices, f-strings, joins,
   `+`): their place is known; each is checked against the context before it is believed;
2. the rest is matched against the index (engine/spans.py), the longest run first, so a slice
   is aligned as one contiguous range before any smaller match; where two runs overlap in the
   text they are cut at whitespace, and whitespace at the ends of a run is left out (it is as
   likely the template's as the document's);
3. a run found at several places is narrowed to the places the code copied text from (in the
   run so far, in this cell, since the previous sub-call), then by adjacency to a placed
   neighbour (the same gap on both sides), then by the order of its placed neighbours;
4. what is still open is never asserted: it is reported as ambiguous, with how often it occurs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_core.engine.spans import (
    LINE_KEY,
    MAX_SEED_PLACES,
    MIN_SHORT,
    SURE,
    ContextIndex,
    K,
    backward,
    forward,
    merge_spans,
)

MAX_AMBIGUOUS = 200
"""Ambiguous runs recorded per text; the count of the rest is dropped (the text holds no more
certain ranges either way)."""
SHOWN_PLACES = 20
"""Places listed for one ambiguous run."""
FILL_GAP = 64
"""Two placed pieces whose gap is the same text on both sides are one range (a join of
consecutive lines); longer gaps would have been matched as part of a run."""
_CACHE_CHARS = 8_192
_CACHE_ENTRIES = 4_096


@dataclass
class Piece:
    at: int
    """Start in the text."""
    end: int
    start: int
    """Start in the context (when not sure: one of its places)."""
    places: list[int] | None = None
    """Where its text could have come from (None: the places could not be listed)."""
    sure: bool = False
    listed: tuple[int, int] | None = None
    """(start, size) the places were listed for."""

    @property
    def size(self) -> int:
        return self.end - self.at


@dataclass(frozen=True)
class Hints:
    exact: Sequence[Sequence[int]] = ()
    """[at, end, start] of pieces the worker followed from the context into the text."""
    copied: Sequence[Sequence[Sequence[int]]] = ()
    """Ranges the code copied text from, broadest first (run, cell, since the last call)."""


NO_HINTS = Hints()


@dataclass
class Placement:
    spans: list[list[int]] = field(default_factory=list)
    """Merged ranges of the context the text certainly holds."""
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    """Runs of the text found at several places that nothing told apart."""
    pieces: list[tuple[int, int, int]] = field(default_factory=list)
    """(start in the text, end, start in the context) of each placed piece."""


def place(text: str, index: ContextIndex, hints: Hints = NO_HINTS) -> Placement:
    """Where `text` came from, as far as the run can tell."""
    exact = _checked(text, index.text, hints.exact)
    found: list[Piece] = []
    for lo, hi in _gaps(exact, len(text)):
        found += _found(text, lo, hi, index)
    pieces = sorted(exact + found, key=lambda p: p.at)
    _decide(pieces, text, index.text, hints)
    return _placement(pieces, text, index.text)


def spans_in(text: str, index: ContextIndex) -> list[list[int]]:
    """The ranges of the context `text` certainly holds (no hints from the REPL)."""
    return place(text, index).spans


# ---- 1. what the worker followed -------------------------------------------------------------


def _checked(text: str, context: str, exact: Sequence[Sequence[int]]) -> list[Piece]:
    """The worker's pieces that really are the context's text there, without overlaps."""
    out: list[Piece] = []
    valid = [list(t) for t in exact if len(t) == 3 and all(type(v) is int for v in t)]
    for triple in sorted(valid):
        at, end, start = triple
        if not (0 <= at < end <= len(text) and start >= 0) or (out and at < out[-1].end):
            continue
        if context.startswith(text[at:end], start):
            out.append(Piece(at, end, start, [start], sure=True))
    return out


def _gaps(pieces: Sequence[Piece], size: int) -> list[tuple[int, int]]:
    edges = [0, *(x for p in pieces for x in (p.at, p.end)), size]
    return [
        (lo, hi) for lo, hi in zip(edges[::2], edges[1::2], strict=True) if hi - lo >= MIN_SHORT
    ]


# ---- 2. matching the rest --------------------------------------------------------------------


def _found(text: str, lo: int, hi: int, index: ContextIndex) -> list[Piece]:
    """Runs of text[lo:hi] found in the context, with their places. Prompts of one batch share
    their template, so results for short stretches are kept on the index and reused."""
    if hi - lo > _CACHE_CHARS:
        return _matched(text, lo, hi, index)
    stretch = text[lo:hi]
    known = index.memo.get(stretch)
    if known is None:
        known = _matched(stretch, 0, hi - lo, index)
        if len(index.memo) >= _CACHE_ENTRIES:
            index.memo.clear()
        index.memo[stretch] = known
    return [Piece(p.at + lo, p.end + lo, p.start, p.places) for p in known]


def _matched(text: str, lo: int, hi: int, index: ContextIndex) -> list[Piece]:
    if hi - lo < SURE:
        # too short to be sure of a sampled window: the whole stretch is looked up as one
        places = index.find_all(text[lo:hi])
        if places:
            return [Piece(lo, hi, places[0], places)]
    found, j, windows = [], lo, index.windows()
    while j <= hi - MIN_SHORT:
        if (j + K > hi or text[j : j + K] not in windows) and not (j == 0 or text[j - 1] == "\n"):
            j += 1  # most positions start nothing: this test is the whole cost of the scan
            continue
        piece = _seed(text, j, lo, hi, index)
        if piece is not None:
            found.append(piece)
        # a long run is taken whole; after a short one a longer run may still start nearby
        j = piece.end if piece is not None and piece.size >= SURE else j + 1
    found = [p for p in found if _whole_lines(p, text, index.text) and _trim(p, text)]
    for p in found:
        _list_places(p, index)
        _widen(p, text, lo, hi, index)
    pieces = [p for p in _untangle(found, text) if _trim(p, text)]
    for p in pieces:
        _list_places(p, index)
    return pieces


def _list_places(p: Piece, index: ContextIndex) -> None:
    if p.listed != (p.start, p.size):
        p.places, p.listed = index.places(p.start, p.start + p.size), (p.start, p.size)


def _widen(p: Piece, text: str, lo: int, hi: int, index: ContextIndex) -> None:
    """A run found at several places may continue further at one of them (a periodic text
    aligns at any period): the one place with the strictly longest run wins."""
    if not p.places or len(p.places) < 2 or len(p.places) > MAX_SEED_PLACES:
        return
    runs = []
    for q in p.places:
        back = backward(text, p.at, index.text, q, p.at - lo)
        runs.append((back + forward(text, p.at, index.text, q, hi - p.at), back, q))
    runs.sort(reverse=True)
    (run, back, q), second = runs[0], runs[1][0]
    if run > p.size and run > second:
        p.at, p.start = p.at - back, q - back
        p.end = p.at + run


def _seed(text: str, j: int, lo: int, hi: int, index: ContextIndex) -> Piece | None:
    """The longest run through text[j] that starts at a sampled window or at a line start."""
    windows = index.window_places(text[j : j + K]) if j + K <= hi else ()
    best = _longest(text, j, lo, hi, index.text, windows)
    if best is not None or not _line_start(text, j):
        return best
    line_end = text.find("\n", j, hi)
    head = text[j : min(j + LINE_KEY, hi if line_end < 0 else line_end)]
    lines = index.line_places(head) if len(head) >= MIN_SHORT else ()
    # a line start is tried even when the line is common (a few per text): its run is flagged
    return _longest(text, j, lo, hi, index.text, lines[:MAX_SEED_PLACES])


def _longest(
    text: str, j: int, lo: int, hi: int, context: str, places: Sequence[int]
) -> Piece | None:
    """The longest run of text[lo:hi] through text[j] aligned with one of `places` (positions
    of the context whose text text[j] starts); none when they are too common to try (a window
    found at more places than that starts nothing: the scan would try it at every position)."""
    if len(places) > MAX_SEED_PLACES:
        return None
    best = None
    for i in places:
        back = backward(text, j, context, i, j - lo)
        run = back + forward(text, j, context, i, hi - j)
        if best is None or run > best.size:
            best = Piece(j - back, j - back + run, i - back)
    return best


def _whole_lines(p: Piece, text: str, context: str) -> bool:
    """A run shorter than SURE is kept only as the whole lines it holds in both texts: such a run
    found from a window inside a line is usually a common phrase, not a piece of the prompt."""
    if p.size >= SURE:
        return True
    if not (_line_start(text, p.at) and _line_start(context, p.start)):
        cut = text.find("\n", p.at, p.end) + 1
        if cut == 0:
            return False
        p.start, p.at = p.start + cut - p.at, cut
    if not (_line_end(text, p.end) and _line_end(context, p.start + p.size)):
        p.end = max(p.at, text.rfind("\n", p.at, p.end))
    return p.size >= MIN_SHORT


def _line_start(text: str, at: int) -> bool:
    return at == 0 or text[at - 1] == "\n"


def _line_end(text: str, at: int) -> bool:
    return at == len(text) or text[at] == "\n"


def _untangle(found: list[Piece], text: str) -> list[Piece]:
    """Runs that overlap in the text: one inside another goes; a partial overlap is cut at a line
    break, else at whitespace (the earlier run ends before it, the later starts after it), else
    given to neither."""
    out: list[Piece] = []
    for p in sorted(found, key=lambda p: (p.at, -p.size)):
        if out and p.end <= out[-1].end:
            continue
        if out and p.at < out[-1].end:
            a, overlap = out[-1], text[p.at : out[-1].end]
            cut = "\n" if "\n" in overlap else next((c for c in overlap if c.isspace()), None)
            if cut is None:
                a_end, b_at = p.at, a.end
            else:
                a_end, b_at = p.at + overlap.index(cut), p.at + overlap.rindex(cut) + 1
            a.end = a_end
            p.start, p.at = p.start + b_at - p.at, b_at
            if a.size < MIN_SHORT:
                out.pop()
        if p.size >= MIN_SHORT:
            out.append(p)
    return out


def _trim(p: Piece, text: str) -> bool:
    """Leave whitespace at the ends of a run out; False when too little is left."""
    run = text[p.at : p.end]
    lead = len(run) - len(run.lstrip())
    p.at, p.start = p.at + lead, p.start + lead
    p.end -= len(run) - len(run.rstrip()) if run.strip() else 0
    return p.size >= MIN_SHORT


# ---- 3. deciding between places --------------------------------------------------------------


def _decide(pieces: list[Piece], text: str, context: str, hints: Hints) -> None:
    for p in pieces:
        if not p.sure and p.places is not None and len(p.places) == 1:
            _settle(p, p.places[0])
    for copied in hints.copied:
        spans = merge_spans(copied)
        for p in pieces:
            if not p.sure and p.places:
                inside = [q for q in p.places if _within(spans, q, q + p.size)]
                if inside:
                    _candidates(p, inside)
    changed = True
    while changed:
        changed = False
        for i, p in enumerate(pieces):
            if not p.sure and p.places:
                want = _by_neighbours(pieces, i, text, context)
                if want is not None:
                    _settle(p, want)
                    changed = True


def _settle(p: Piece, start: int) -> None:
    p.start, p.sure = start, True


def _candidates(p: Piece, places: list[int]) -> None:
    p.places = places
    if len(places) == 1:
        _settle(p, places[0])


def _within(spans: list[list[int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _by_neighbours(pieces: list[Piece], i: int, text: str, context: str) -> int | None:
    """The one place that continues a placed neighbour across the same gap text (adjacency),
    else the one place between the nearest placed pieces before and after it (order)."""
    p = pieces[i]
    places = p.places or []
    if i > 0 and pieces[i - 1].sure:
        a = pieces[i - 1]
        gap = text[a.end : p.at]
        want = a.start + a.size + len(gap)
        if want in places and context.startswith(gap, a.start + a.size):
            return want
    if i + 1 < len(pieces) and pieces[i + 1].sure:
        b = pieces[i + 1]
        gap = text[p.end : b.at]
        want = b.start - len(gap) - p.size
        if want in places and context.startswith(gap, want + p.size):
            return want
    before = next((q for q in reversed(pieces[:i]) if q.sure), None)
    after = next((q for q in pieces[i + 1 :] if q.sure), None)
    if before is None or after is None:
        return None
    lo, hi = before.start + before.size, after.start
    between = [q for q in places if lo <= q and q + p.size <= hi]
    return between[0] if len(between) == 1 else None


# ---- 4. the result ---------------------------------------------------------------------------


def _placement(pieces: list[Piece], text: str, context: str) -> Placement:
    spans: list[list[int]] = []
    placed: list[tuple[int, int, int]] = []
    ambiguous: list[dict[str, Any]] = []
    last: Piece | None = None
    for p in pieces:
        if not p.sure:
            if len(ambiguous) < MAX_AMBIGUOUS:
                shown = (p.places or [p.start])[0]
                ambiguous.append(
                    {
                        "start": shown,
                        "end": shown + p.size,
                        "occurrences": None if p.places is None else len(p.places),
                        "places": (p.places or [])[:SHOWN_PLACES],
                    }
                )
            continue
        spans.append([p.start, p.start + p.size])
        placed.append((p.at, p.end, p.start))
        if last is not None:
            gap = p.at - last.end
            after_last = last.start + last.size
            same_gap = 0 < gap <= FILL_GAP and p.start - after_last == gap
            if same_gap and context.startswith(text[last.end : p.at], after_last):
                spans.append([after_last, p.start])
        last = p
    return Placement(merge_spans(spans), ambiguous, placed)
