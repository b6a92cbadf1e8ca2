"""Worker-side instrumentation of `re` and `json.loads`: what a search scanned counts as read,
and the text a match or a split could hand back counts as copied (tracking.py has the rest).
Stdlib only: worker.py loads this file by path and passes the tracked str type in.

Patterns compiled before the worker started (stdlib internals) are not wrapped.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

_real_compile = re.compile
_real_loads = json.loads
_tracked: Any = type(None)
"""The worker's TrackedStr (set by patch_modules)."""


def _scanned(string: Any, kind: str, result: Any, pos: int = 0, endpos: int = sys.maxsize) -> None:
    if type(string) is not _tracked:
        return
    n = str.__len__(string)
    lo = min(max(pos, 0), n)  # the regex engine clamps pos/endpos this way, unlike slicing
    hi = max(lo, min(endpos, n))
    if kind in ("search", "match", "fullmatch"):
        if result is not None:
            hi = result.end()
            string._mark(result.start(), hi, read=False, copy=True)  # its groups are copies
        elif kind != "search":
            hi = min(hi, lo + 1)  # a failed anchored match looked at least at its first character
    elif kind != "finditer":
        string._mark(lo, hi, read=False, copy=True)  # findall, split, sub: text of all of it
    string._mark(lo, hi)


def _copying(matches: Iterator[Any], string: Any) -> Iterator[Any]:
    """finditer's matches, each recorded as copied (its groups can be taken) as it comes."""
    for m in matches:
        string._mark(m.start(), m.end(), read=False, copy=True)
        yield m


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
        found = self._p.finditer(string, pos, endpos)
        return _copying(found, string) if type(string) is _tracked else found

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


def _json_loads(s: Any, *args: Any, **kwargs: Any) -> Any:
    if type(s) is _tracked:
        s._all()
    return _real_loads(s, *args, **kwargs)


def patch_modules(tracked: Any) -> None:
    """Route `re` and json.loads through the recorders (called in the worker process only)."""
    global _tracked
    _tracked = tracked
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
