"""Worker-side data flow: which sub-call results ended up in which variables (and in the final
answer). Stdlib only: worker.py loads this file by path.

Results are found verbatim (>= 8 chars) in str / list / tuple / set / dict values only, within
bounded work per cell: a result that was edited, parsed or summarised is not followed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

MIN_RESULT_CHARS = 8
"""Shorter sub-call results ("yes", "0") would be found everywhere by chance."""
SCAN_CHARS = 1_000_000
SCAN_ITEMS = 10_000
SCAN_WORK = 500_000_000
"""Characters searched per cell for results; past it only identity matches are counted."""
KEEP_CHARS = 256 * 2**20
"""Result texts kept for data flow; later results are not followed (bounds worker memory)."""
DOCUMENT_CHECK_CHARS = 50_000_000
"""Up to this size, results are checked against the document (see Flow.set_document)."""


class Flow:
    """The sub-call results this worker received (by call key) and the variables they reached.

    Keys are the worker's call id ("7"), or call id and position for a batched call ("7/2").
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: list[tuple[str, str]] = []
        self._by_id: dict[int, str] = {}
        # id(string) -> (string, keys found in it, how many results it was checked against);
        # holding the string keeps its id valid, and only strings still in variables are kept
        self._checked: dict[int, tuple[str, set[str], int]] = {}
        self._last: dict[str, tuple[int, frozenset[str]]] = {}
        self._kept = 0
        self._document: str | None = None
        self._copied: set[str] = set()

    def set_document(self, context: Any) -> None:
        """Remember the document's text. A result that is a verbatim piece of it (an extractive
        answer) is found inside every copy of the document the code holds, so for such results
        only the very object counts as flow, not containment (likewise for a result its own
        prompt holds)."""
        if isinstance(context, dict):
            context = "\n\n".join(str(v) for v in context.values())
        elif isinstance(context, list):
            context = "\n\n".join(str(v) for v in context)
        text = str.__str__(context) if isinstance(context, str) else str(context)
        self._document = text if len(text) <= DOCUMENT_CHECK_CHARS else None

    def received(self, call_id: int, value: Any, args: dict[str, Any]) -> None:
        """A sub-call's result; `args` are the call's, whose prompts it may repeat."""
        if isinstance(value, str):
            self._add(str(call_id), value, args.get("prompt"))
        elif isinstance(value, list):
            prompts = args.get("prompts") or []
            for i, item in enumerate(value):
                if isinstance(item, str):
                    self._add(f"{call_id}/{i}", item, prompts[i] if i < len(prompts) else None)

    def _add(self, key: str, text: str, prompt: Any) -> None:
        if MIN_RESULT_CHARS <= len(text) <= KEEP_CHARS - self._kept:
            # a result the document or its own prompt already holds ("NOT FOUND" when the
            # template says "reply NOT FOUND") is in every copy of those: only the very
            # object counts as flow, or the prompts would seem to hold every answer
            copied = (
                self._document is None
                or str.__contains__(self._document, text)
                or (isinstance(prompt, str) and str.__contains__(prompt, text))
            )
            with self._lock:
                if copied:
                    self._copied.add(key)
                self._texts.append((key, text))
                self._by_id[id(text)] = key
                self._kept += len(text)

    def changed(self, variables: dict[str, Any]) -> dict[str, list[str]]:
        """{name: call keys} for variables that now hold results and changed since last time."""
        old, self._checked, budget = self._checked, {}, [SCAN_WORK]
        out: dict[str, list[str]] = {}
        last: dict[str, tuple[int, frozenset[str]]] = {}
        for name, value in variables.items():
            keys = frozenset(self._sources(value, old, self._checked, budget))
            if keys:
                last[name] = (id(value), keys)
                if self._last.get(name) != last[name]:
                    out[name] = self._ordered(keys)
        self._last = last
        return out

    def sources(self, value: Any) -> list[str]:
        """Call keys of the results found in `value` (the final answer)."""
        return self._ordered(self._sources(value, self._checked, {}, [SCAN_WORK]))

    def _ordered(self, keys: set[str] | frozenset[str]) -> list[str]:
        return [k for k, _ in self._texts if k in keys]

    def _sources(
        self, value: Any, old: dict[int, Any], new: dict[int, Any], budget: list[int]
    ) -> set[str]:
        with self._lock:
            texts = list(self._texts)
        found: set[str] = set()
        if not texts:
            return found
        for s in _strings(value):
            key = self._by_id.get(id(s))
            if key is not None:
                found.add(key)
            elif MIN_RESULT_CHARS <= len(s) <= SCAN_CHARS:
                cached = new.get(id(s)) or old.get(id(s))
                keys, done = (cached[1], cached[2]) if cached else (set[str](), 0)
                for key, text in texts[done:]:
                    if budget[0] <= 0:
                        break
                    done, budget[0] = done + 1, budget[0] - len(s)
                    if key not in self._copied and str.__contains__(s, text):
                        keys.add(key)
                new[id(s)] = (s, keys, done)
                found |= keys
        return found


def _strings(value: Any) -> Iterator[str]:
    """The str values inside `value` (nested list, tuple, set, dict values), a bounded number."""
    stack, seen = [(value, 0)], 0
    while stack and seen < SCAN_ITEMS:
        item, depth = stack.pop()
        seen += 1
        if isinstance(item, str):
            yield item
        elif depth < 3 and isinstance(item, list | tuple | set | frozenset | dict):
            items = item.values() if isinstance(item, dict) else item
            room = max(0, SCAN_ITEMS - seen - len(stack))
            stack.extend((x, depth + 1) for x in itertools.islice(items, room))
