"""Plain data at the engine's boundaries: trace nodes, model completions, cell results, run results.

Everything here is a dataclass that round-trips through `to_dict()` / JSON, so the store, the
journal, the CLI and the UI never hold engine objects with behaviour.
"""

from __future__ import annotations

import os
import re
import time
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

NodeKind = Literal["run", "lm", "code", "llm_query", "rlm_query", "final"]
Status = Literal["running", "ok", "error", "limit", "interrupted", "cancelled"]
"""`cancelled`: cut short because its run ended first (a sub-call still in flight at FINAL)."""
KINDS: tuple[NodeKind, ...] = typing.get_args(NodeKind)
STATUSES: tuple[Status, ...] = typing.get_args(Status)
TERMINAL_STATUSES = STATUSES[1:]
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")

_last_id = 0


def new_id() -> str:
    """Time-sortable id: 16 hex digits of microseconds since the epoch plus 6 random hex digits."""
    global _last_id
    now = time.time_ns() // 1000
    # ids made in the same microsecond must still sort in creation order
    _last_id = max(now, _last_id + 1)
    return f"{_last_id:016x}{os.urandom(3).hex()}"


def valid_id(value: object) -> bool:
    """A run or node id: letters, digits, `_` and `-`, at most 64 (ours are 22 hex digits).
    Paths are built from run ids, so an id never holds a separator or a dot."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


@dataclass
class Node:
    """One event of the trace tree (see DESIGN.md section 4 for what each kind holds)."""

    node_id: str
    run_id: str
    parent_id: str | None
    kind: NodeKind
    depth: int
    seq: int
    status: Status = "running"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    model: str | None = None
    input: str | None = None
    """What the node was given: a sub-call's prompt, a run's question, an lm call's new messages."""
    output: str | None = None
    """What the node passed upward: a response, a sub-answer, a final answer."""
    code: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    model_view: str | None = None
    """For code nodes: the truncated text the root model was shown."""
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    """None means unknown, never zero by default."""
    latency_s: float | None = None
    context_spans: list[list[int]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # hand-rolled: dataclasses.asdict deep-copies and was 80% of the cost of tracing
        data = {name: getattr(self, name) for name in _NODE_FIELDS}
        data["context_spans"] = [list(span) for span in self.context_spans]
        data["meta"] = dict(self.meta)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


_NODE_FIELDS = tuple(Node.__dataclass_fields__)
_OPTIONAL_TEXTS = ("model", "input", "output", "code", "stdout", "stderr", "model_view", "error")


def node_problem(data: Any) -> str | None:
    """What makes a stored or imported node unusable (a wrong type anywhere), or None. Every
    reader of files (journals, imports) checks this before a node reaches the database."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for name in ("node_id", "run_id"):
        if not valid_id(data.get(name)):
            return f"{name} is not a valid id"
    parent = data.get("parent_id")
    checks = [
        ("parent_id", parent is None or valid_id(parent)),
        ("kind", data.get("kind") in KINDS),
        ("status", data.get("status", "running") in STATUSES),
        ("depth", _is_int(data.get("depth"))),
        ("seq", _is_int(data.get("seq"))),
        ("started_at", _is_number(data.get("started_at", 0))),
        # deeper meta would fail the JSON encoding of the whole batch it is written in
        ("meta", isinstance(data.get("meta", {}), dict) and nesting(data.get("meta")) <= 100),
        ("context_spans", _are_spans(data.get("context_spans", []))),
    ]
    checks += [(n, data.get(n) is None or isinstance(data[n], str)) for n in _OPTIONAL_TEXTS]
    checks += [(n, data.get(n) is None or _is_int(data[n])) for n in ("tokens_in", "tokens_out")]
    checks += [
        (n, data.get(n) is None or _is_number(data[n]))
        for n in ("ended_at", "cost_usd", "latency_s")
    ]
    wrong = [name for name, ok in checks if not ok]
    return f"wrong type or value of {', '.join(wrong)}" if wrong else None


def nesting(value: Any) -> int:
    """How deeply lists and dicts nest in `value` (counted without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            todo += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _is_int(value: Any) -> bool:
    # the index stores 64-bit integers: a bigger one would fail the whole batch it is in
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**62


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value == value


def _are_spans(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(s, list) and len(s) == 2 and all(_is_int(x) for x in s) for s in value
    )


@dataclass(frozen=True)
class Completion:
    """One model response with what it cost."""

    text: str
    model: str
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_s: float
    finish_reason: str | None = None
    replayed: bool = False
    """Served from a recorded run (replay or the part of a fork before its fork point)."""
    retry_errors: list[str] = field(default_factory=list)
    """What went wrong in each attempt before the one that answered (empty: first try)."""
    cached_tokens: int | None = None
    """Prompt tokens the provider says it served from its prompt cache (None: not reported)."""


@dataclass
class CellResult:
    """What one executed code block produced, as reported by the sandbox."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    """Traceback text of an exception raised by the model's code (data for the model)."""
    final: dict[str, Any] | None = None
    """{"value": str, "var": name or None} when FINAL / FINAL_VAR ran."""
    variables: dict[str, str] = field(default_factory=dict)
    """User variables after the cell: name -> short description (type and size)."""
    restarted: bool = False
    """The worker died or was killed during the cell and a fresh one was started."""
    timed_out: bool = False
    stdout_total_chars: int = 0
    """Length of everything printed, including what was dropped beyond the capture cap."""
    read_spans: list[list[int]] = field(default_factory=list)
    copied_spans: list[list[int]] = field(default_factory=list)
    """Ranges the cell copied text out of (a hint for placing what it sent and printed)."""
    assignments: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RunSummary:
    """One row of the runs table: a run as the lists and headers show it (no node texts)."""

    run_id: str
    created_at: float = 0.0
    ended_at: float | None = None
    question: str | None = None
    root_model: str | None = None
    sub_model: str | None = None
    status: str = "running"
    limit_name: str | None = None
    answer: str | None = None
    error: str | None = None
    iterations: int | None = None
    llm_calls: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    """None means unknown, never zero by default."""
    context_sha: str | None = None
    context_chars: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return (self.tokens_in or 0) + (self.tokens_out or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    run_id: str
    answer: str | None
    status: Status
    limit: str | None = None
    error: str | None = None
    iterations: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    """None when any call's cost was unknown."""
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
