"""The context as text, and its size: one answer for every part of the app.

A context is a `str`, or a `list` / `dict` of parts (several files, records). Its size is the
characters of its parts (what the user and the root model are told). Its text is the parts
joined by a blank line, in order: every character position in the trace (spans, reads,
coverage) is a position in that text. The worker's read tracking (repl/tracking.py, stdlib
only) joins the parts the same way.
"""

from __future__ import annotations

from typing import Any

SEPARATOR = "\n\n"


def parts(context: Any) -> list[tuple[str, str]]:
    """(name, text) of each part: a dict's keys, a list's indexes, "" for a plain text."""
    if isinstance(context, str):
        return [("", context)]
    if isinstance(context, dict):
        items = [(str(k), v) for k, v in context.items()]
    elif isinstance(context, list):
        items = [(str(i), v) for i, v in enumerate(context)]
    else:
        return [("", str(context))]
    return [(name, v if isinstance(v, str) else str(v)) for name, v in items]


def flatten(context: Any) -> tuple[str, list[tuple[str, int]]]:
    """The context's text, and where each part of a list/dict context starts in it."""
    if isinstance(context, str):
        return context, []
    if not isinstance(context, dict | list):
        return str(context), []
    offsets, pos = [], 0
    named = parts(context)
    for name, text in named:
        offsets.append((name, pos))
        pos += len(text) + len(SEPARATOR)
    return SEPARATOR.join(text for _, text in named), offsets


def text_of(context: Any) -> str:
    return flatten(context)[0]


def size_of(context: Any) -> int:
    """Characters of the context: its parts added up (without the blank lines between them)."""
    return sum(len(t) for _, t in parts(context))


def labelled_text(context: Any) -> str:
    """The context for a model's window: a dict's parts under their names (file paths matter)."""
    if isinstance(context, dict):
        return SEPARATOR.join(f"===== {name} =====\n{t}" for name, t in parts(context))
    return text_of(context)
