"""Worker-side instrumentation: which ranges of `context` model code read (data flow of
sub-call results is flow.py). Stdlib only: worker.py loads this file by path.
"""

# Limits, stated plainly. Reads are seen only through Python-level calls on the context object: C
# code that takes a str's buffer directly is invisible (`str.find(context, x)` via the unbound
# builtin, `"".join(context_list)`, json.dumps, io.StringIO, bytes(), hashing, comparisons,
# memoryview, C extensions). `str(context)`, `context[:]`, `context.lower()` & co. count as
# reading all of it and return a plain str, so later reads of that copy are not attributed.
# Iteration and finditer count the whole string at once, even if the loop stops early. Patterns
# compiled before the worker started (stdlib internals) are not wrapped. In list/dict contexts
# only str items are tracked. `type(context)` is a str subclass named "str": `is str` is False.

from __future__ import annotations

import json
import operator
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

MERGE_AT = 4096
"""Recorded ranges are compacted past this many, so random access cannot grow the list unbounded."""
MAX_SPANS = 10_000
"""Past this many ranges, nearby ones are joined (gaps count as read): a bounded trace."""


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


class Reads:
    """Ranges of the flattened context read while a cell runs; merged once at the cell's end."""

    def __init__(self) -> None:
        self.active = False
        self._spans: list[list[int]] = []
        self._limit = MERGE_AT

    def add(self, start: int, end: int) -> None:
        if not self.active or end <= start:
            return
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


_IDLE = Reads()


class TrackedStr(str):
    """A str that reports the ranges read from it; everything it returns is a plain str."""

    _base: int
    _reads: Reads

    def __new__(cls, text: str = "", base: int = 0, reads: Reads | None = None) -> TrackedStr:
        self = super().__new__(cls, text)
        self._base, self._reads = base, reads or _IDLE
        return self

    def _mark(self, start: int, end: int) -> None:
        self._reads.add(self._base + start, self._base + end)

    def _all(self) -> None:
        self._mark(0, str.__len__(self))

    def _region(self, start: Any, end: Any) -> tuple[int, int]:
        lo, hi, _ = slice(start, end).indices(str.__len__(self))
        return lo, max(lo, hi)

    def __getitem__(self, key: Any) -> str:
        piece = str.__getitem__(self, key)
        if isinstance(key, slice):
            start, stop, step = key.indices(str.__len__(self))
            if step == 1:
                self._mark(start, stop)
            elif piece:
                last = start + step * (len(piece) - 1)
                self._mark(min(start, last), max(start, last) + 1)
        else:
            i = operator.index(key)
            i += str.__len__(self) if i < 0 else 0
            self._mark(i, i + 1)
        return piece

    def __iter__(self) -> Iterator[str]:
        self._all()
        return str.__iter__(self)

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

    def __radd__(self, other: Any) -> str:
        if not isinstance(other, str):
            return NotImplemented
        self._all()
        return other + str.__str__(self)


def _longest(affix: Any) -> int:
    return max(map(len, affix), default=0) if isinstance(affix, tuple) else len(affix)


def _reads_all(name: str) -> Callable[..., Any]:
    method = getattr(str, name)

    def wrapper(self: TrackedStr, *args: Any, **kwargs: Any) -> Any:
        self._all()
        return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = name, f"str.{name}", method.__doc__
    return wrapper


# Everything else that looks at the characters copies or scans all of them.
_WHOLE = {"__str__", "__repr__", "__format__", "__add__", "__mul__", "__rmul__", "__mod__"}
_WHOLE |= {n for n in vars(str) if not n.startswith("_") and n != "maketrans"}
for _name in sorted(_WHOLE - set(vars(TrackedStr))):
    setattr(TrackedStr, _name, _reads_all(_name))
# Model code prints type(context) and its name; it should read as a str.
TrackedStr.__name__ = TrackedStr.__qualname__ = "str"
TrackedStr.__module__ = "builtins"


def track(context: Any, reads: Reads) -> Any:
    """The context with its text parts tracked at their offsets in provenance.flatten()'s text."""
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


# ---- re and json -----------------------------------------------------------------------------

_real_compile = re.compile


def _scanned(string: Any, kind: str, result: Any, pos: int = 0, endpos: int = sys.maxsize) -> None:
    if type(string) is not TrackedStr:
        return
    n = str.__len__(string)
    lo = min(max(pos, 0), n)  # the regex engine clamps pos/endpos this way, unlike slicing
    hi = max(lo, min(endpos, n))
    if kind in ("search", "match", "fullmatch") and result is not None:
        hi = result.end()
    elif kind in ("match", "fullmatch"):
        hi = min(hi, lo + 1)  # a failed anchored match looked at least at its first character
    string._mark(lo, hi)


class TrackedPattern:
    """A compiled pattern that reports what it scanned; passes as re.Pattern for isinstance."""

    __slots__ = ("_p",)

    def __init__(self, pattern: re.Pattern[Any]) -> None:
        self._p = pattern

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return re.Pattern

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def __repr__(self) -> str:
        return repr(self._p)

    def __copy__(self) -> TrackedPattern:
        return self

    def __deepcopy__(self, memo: Any) -> TrackedPattern:
        return self

    def search(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        m = self._p.search(string, pos, endpos)
        _scanned(string, "search", m, pos, endpos)
        return m

    def match(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        m = self._p.match(string, pos, endpos)
        _scanned(string, "match", m, pos, endpos)
        return m

    def fullmatch(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        m = self._p.fullmatch(string, pos, endpos)
        _scanned(string, "fullmatch", m, pos, endpos)
        return m

    def finditer(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        _scanned(string, "finditer", None, pos, endpos)
        return self._p.finditer(string, pos, endpos)

    def findall(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        _scanned(string, "findall", None, pos, endpos)
        return self._p.findall(string, pos, endpos)

    def split(self, string: Any, maxsplit: int = 0) -> Any:
        _scanned(string, "split", None)
        return self._p.split(string, maxsplit)

    def sub(self, repl: Any, string: Any, count: int = 0) -> Any:
        _scanned(string, "sub", None)
        return self._p.sub(repl, string, count)

    def subn(self, repl: Any, string: Any, count: int = 0) -> Any:
        _scanned(string, "subn", None)
        return self._p.subn(repl, string, count)


def _compile(pattern: Any, flags: Any = 0) -> TrackedPattern:
    if isinstance(pattern, TrackedPattern):
        pattern = pattern._p
    return TrackedPattern(_real_compile(pattern, flags))


def _module_function(name: str, flags_at: int) -> Callable[..., Any]:
    def wrapper(pattern: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.pop("flags", 0)
        if len(args) > flags_at:
            flags, args = args[flags_at], args[:flags_at]
        return getattr(_compile(pattern, flags), name)(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = getattr(re, name).__doc__
    return wrapper


_real_loads = json.loads


def _json_loads(s: Any, *args: Any, **kwargs: Any) -> Any:
    if type(s) is TrackedStr:
        s._all()
    return _real_loads(s, *args, **kwargs)


def patch_modules() -> None:
    """Route `re` and json.loads through the recorders (called in the worker process only)."""
    # where each module function takes `flags` positionally, after the pattern
    for name, flags_at in (
        ("search", 1),
        ("match", 1),
        ("fullmatch", 1),
        ("findall", 1),
        ("finditer", 1),
        ("split", 2),
        ("sub", 3),
        ("subn", 3),
    ):
        setattr(re, name, _module_function(name, flags_at))
    re.compile = _compile  # type: ignore[assignment]
    json.loads = _json_loads
