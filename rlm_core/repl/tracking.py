"""Worker-side instrumentation: which ranges of `context` model code read, which it copied out,
and where the pieces of strings built from it came from (data flow of sub-call results is
flow.py; `re` and `json` are patterns.py; the rewrite of f-strings and joins is compose.py).
Stdlib only: worker.py loads this file by path.

`context` is a `TrackedStr`: a str that knows, for each stretch of itself, where it sits in the
flattened context (its segments). Slices of it, `str()`, `strip()`, the pieces of `split()` and
`splitlines()`, `+`, f-strings and `str.join` (the last two through compose.py) give tracked
strings again, so a prompt built from slices tells the engine exactly where its pieces came from.
"""

# Limits, stated plainly. Reads are seen only through Python-level calls on tracked strings: C
# code that takes a str's buffer directly is invisible (`str.find(context, x)` via the unbound
# builtin, json.dumps, io.StringIO, bytes(), hashing, comparisons, memoryview, `%` with a tuple,
# C extensions); such copies are plain strs, placed later by matching text. Iteration and
# finditer count the whole string as read at once, even if the loop stops early. In list/dict
# contexts only str items are tracked. `type(context)` is a str subclass named "str": `is str`
# is False, for slices of 16 characters or more too.

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

MERGE_AT = 4096
"""Recorded ranges are compacted past this many, so random access cannot grow the list unbounded."""
MAX_SPANS = 10_000
"""Past this many ranges, nearby ones are joined (gaps count as read): a bounded trace."""
MIN_TRACKED = 16
"""Shorter slices are plain strs: too short to place, and cheap to make by the million."""
MAX_SEGMENTS = 100_000
"""A string built from more tracked pieces than this is a plain str (its copies are recorded)."""
MAX_TRACKED_PIECES = 200_000
"""split()/splitlines() with more pieces than this return plain strs (bounded worker memory)."""

Segments = tuple[tuple[int, int, int], ...]
"""(start, end) in a tracked string -> start in the flattened context."""


def merge(spans: list[list[int]]) -> list[list[int]]:
    spans = sorted(spans)
    out: list[list[int]] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def _compact(spans: list[list[int]]) -> list[list[int]]:
    spans, gap = merge(spans), 1
    while len(spans) > MAX_SPANS:
        joined = [spans[0]]
        for start, end in spans[1:]:
            if start - joined[-1][1] < gap:
                joined[-1][1] = end
            else:
                joined.append([start, end])
        spans, gap = joined, gap * 4
    return spans


class Ranges:
    """A bounded, growing set of [start, end) ranges."""

    def __init__(self) -> None:
        self._spans: list[list[int]] = []
        self._limit = MERGE_AT

    def add(self, start: int, end: int) -> None:
        spans = self._spans
        if spans:
            last = spans[-1]
            # sequential access (loops over slices, index after index) extends one range
            if start <= last[1] and end >= last[0]:
                last[0], last[1] = min(last[0], start), max(last[1], end)
                return
        spans.append([start, end])
        if len(spans) >= self._limit:
            self._spans = _compact(spans)
            self._limit = max(MERGE_AT, 2 * len(self._spans))

    def take(self) -> list[list[int]]:
        spans, self._spans, self._limit = self._spans, [], MERGE_AT
        return _compact(spans)


class Reads:
    """What a cell did with the flattened context: the ranges it read, the ranges it copied
    text out of (all of them, and since the last sub-call: the engine's hint for placing the
    text of a prompt). Copies are reads too, except those made by building strings."""

    def __init__(self) -> None:
        self.active = False
        self.reads, self.copies, self.recent = Ranges(), Ranges(), Ranges()

    def add(self, start: int, end: int, *, read: bool = True, copy: bool = False) -> None:
        if not self.active or end <= start:
            return
        if read:
            self.reads.add(start, end)
        if copy:
            self.copies.add(start, end)
            self.recent.add(start, end)

    def take(self) -> list[list[int]]:
        """The cell's reads (its copies are taken with take_copies)."""
        return self.reads.take()

    def take_copies(self) -> list[list[int]]:
        self.recent.take()
        return self.copies.take()


_IDLE = Reads()


class TrackedStr(str):
    """A str that reports the ranges read from it and keeps where its pieces came from."""

    _segs: Segments
    _reads: Reads

    def __new__(cls, text: str = "", base: int = 0, reads: Reads | None = None) -> TrackedStr:
        return _make(text, ((0, len(text), base),), reads or _IDLE)

    def _mark(self, start: int, end: int, *, read: bool = True, copy: bool = False) -> None:
        for s, e, base in self._segs:
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                self._reads.add(base + lo - s, base + hi - s, read=read, copy=copy)

    def _all(self, *, read: bool = True, copy: bool = True) -> None:
        self._mark(0, str.__len__(self), read=read, copy=copy)

    def _region(self, start: Any, end: Any) -> tuple[int, int]:
        lo, hi, _ = slice(start, end).indices(str.__len__(self))
        return lo, max(lo, hi)

    def _sub(self, piece: str, start: int) -> str:
        """`piece`, the text of self[start:start + len(piece)], tracked when long enough."""
        end = start + len(piece)
        if len(piece) < MIN_TRACKED:
            return piece
        segs = tuple(
            (max(s, start) - start, min(e, end) - start, base + max(s, start) - s)
            for s, e, base in self._segs
            if max(s, start) < min(e, end)
        )
        return _make(piece, segs, self._reads) if segs else piece

    def __getitem__(self, key: Any) -> str:
        piece = str.__getitem__(self, key)
        if isinstance(key, slice):
            start, stop, step = key.indices(str.__len__(self))
            if step == 1:
                self._mark(start, stop, copy=True)
                return self._sub(piece, start)
            if piece:
                last = start + step * (len(piece) - 1)
                self._mark(min(start, last), max(start, last) + 1, copy=True)
        else:
            i = operator.index(key)
            i += str.__len__(self) if i < 0 else 0
            self._mark(i, i + 1, copy=True)
        return piece

    def __iter__(self) -> Iterator[str]:
        self._all()
        return str.__iter__(self)

    def __str__(self) -> str:
        return self  # a str already: str(context) is no copy and no read

    def __format__(self, spec: str) -> str:
        if spec:
            self._all()
            return str.__format__(str.__str__(self), spec)
        self._all(read=False)  # f"{x}" outside a rewritten cell copies it where we cannot see
        return self

    def __add__(self, other: Any) -> str:
        return compose((self, other)) if isinstance(other, str) else NotImplemented

    def __radd__(self, other: Any) -> str:
        return compose((other, self)) if isinstance(other, str) else NotImplemented

    def __rmod__(self, other: Any) -> Any:
        self._all(read=False)  # "%s" % context: the plain str's % copies it
        return NotImplemented

    def __contains__(self, sub: Any) -> bool:
        if not isinstance(sub, str):
            return str.__contains__(self, sub)  # raises the usual TypeError
        at = str.find(self, sub)
        self._mark(0, at + len(sub) if at >= 0 else str.__len__(self))
        return at >= 0

    def _found(self, sub: Any, start: Any, end: Any, at: int, backwards: bool) -> None:
        lo, hi = self._region(start, end)
        if at < 0:
            self._mark(lo, hi)
        elif backwards:
            self._mark(at, hi)
        else:
            self._mark(lo, at + len(sub))

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        at = str.find(self, sub, start, end)
        self._found(sub, start, end, at, False)
        return at

    def index(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self.find(sub, start, end)
        return str.index(self, sub, start, end)

    def rfind(self, sub: Any, start: Any = None, end: Any = None) -> int:
        at = str.rfind(self, sub, start, end)
        self._found(sub, start, end, at, True)
        return at

    def rindex(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self.rfind(sub, start, end)
        return str.rindex(self, sub, start, end)

    def count(self, sub: Any, start: Any = None, end: Any = None) -> int:
        n = str.count(self, sub, start, end)
        self._mark(*self._region(start, end))
        return n

    def startswith(self, prefix: Any, start: Any = None, end: Any = None) -> bool:
        hit = str.startswith(self, prefix, start, end)
        lo, hi = self._region(start, end)
        self._mark(lo, min(hi, lo + _longest(prefix)))
        return hit

    def endswith(self, suffix: Any, start: Any = None, end: Any = None) -> bool:
        hit = str.endswith(self, suffix, start, end)
        lo, hi = self._region(start, end)
        self._mark(max(lo, hi - _longest(suffix)), hi)
        return hit

    def strip(self, chars: Any = None) -> str:
        return self._stripped(str.strip(self, chars), chars)

    def lstrip(self, chars: Any = None) -> str:
        return self._stripped(str.lstrip(self, chars), chars)

    def rstrip(self, chars: Any = None) -> str:
        return self._stripped(str.rstrip(self, chars), chars)

    def _stripped(self, out: str, chars: Any) -> str:
        start = str.__len__(self) - len(str.lstrip(self, chars)) if out else 0
        self._mark(start, start + len(out), copy=True)
        return self._sub(out, start)

    def split(self, sep: Any = None, maxsplit: Any = -1) -> list[str]:
        pieces = str.split(self, sep, maxsplit)
        self._all()
        if len(pieces) > MAX_TRACKED_PIECES:
            return pieces
        out, at = [], 0
        for piece in pieces:
            if sep is None:
                at = str.find(self, piece, at)  # only whitespace lies between pieces
            out.append(self._sub(piece, at))
            at += len(piece) + (0 if sep is None else len(sep))
        return out

    def splitlines(self, keepends: Any = False) -> list[str]:
        whole = str.splitlines(self, True)
        self._all()
        lines = whole if keepends else str.splitlines(self)
        if len(lines) > MAX_TRACKED_PIECES:
            return lines
        out, at = [], 0
        for line, with_end in zip(lines, whole, strict=True):
            out.append(self._sub(line, at))
            at += len(with_end)
        return out


def _make(text: str, segs: Segments, reads: Reads) -> TrackedStr:
    self = str.__new__(TrackedStr, text)
    self._segs, self._reads = segs, reads
    return self


def compose(parts: Sequence[Any]) -> str:
    """The parts (strs) concatenated; tracked when any part is: the pieces keep their places."""
    text = "".join(parts)
    tracked = [p for p in parts if type(p) is TrackedStr]
    if not tracked:
        return text
    segs: list[tuple[int, int, int]] = []
    at = 0
    for part in parts:
        if type(part) is TrackedStr:
            part._all(read=False)
            segs.extend((s + at, e + at, base) for s, e, base in part._segs)
        at += len(part)
    return text if len(segs) > MAX_SEGMENTS else _make(text, tuple(segs), tracked[0]._reads)


def segments(value: Any) -> list[list[int]]:
    """[start, end, place in the context] of the tracked pieces of a str, or of a list/dict
    context's parts in flatten() offsets: sent with a sub-call so the engine knows the places."""
    if type(value) is TrackedStr:
        return [[s, e, base] for s, e, base in value._segs]
    if not isinstance(value, list | dict):
        return []
    out, at = [], 0
    for item in value.values() if isinstance(value, dict) else value:
        out += [[s + at, e + at, base] for s, e, base in segments(item)]
        at += len(item if isinstance(item, str) else str(item)) + 2  # parts joined by "\n\n"
    return out


def _longest(affix: Any) -> int:
    return max(map(len, affix), default=0) if isinstance(affix, tuple) else len(affix)


def _reads_all(name: str) -> Any:
    method = getattr(str, name)

    def wrapper(self: TrackedStr, *args: Any, **kwargs: Any) -> Any:
        self._all()
        return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = name, f"str.{name}", method.__doc__
    return wrapper


# Everything else that looks at the characters copies or scans all of them.
_WHOLE = {"__repr__", "__mul__", "__rmul__", "__mod__"}
_WHOLE |= {n for n in vars(str) if not n.startswith("_") and n != "maketrans"}
for _name in sorted(_WHOLE - set(vars(TrackedStr))):
    setattr(TrackedStr, _name, _reads_all(_name))
# Model code prints type(context) and its name; it should read as a str.
TrackedStr.__name__ = TrackedStr.__qualname__ = "str"
TrackedStr.__module__ = "builtins"


def track(context: Any, reads: Reads) -> Any:
    """The context with its text parts tracked at their offsets in flatten()'s text."""
    if isinstance(context, str):
        return TrackedStr(context, 0, reads)
    if not isinstance(context, list | dict):
        return context
    items = list(context.items()) if isinstance(context, dict) else list(enumerate(context))
    out, pos = [], 0
    for key, value in items:
        text = value if isinstance(value, str) else str(value)
        out.append((key, TrackedStr(value, pos, reads) if isinstance(value, str) else value))
        pos += len(text) + 2  # flatten() joins the parts with a blank line
    return dict(out) if isinstance(context, dict) else [v for _, v in out]
