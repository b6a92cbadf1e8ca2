"""Plain data at the engine's boundaries: trace nodes, model completions, cell results, run results.

Everything here is a dataclass that round-trips through `to_dict()` / JSON, so the store, the
journal, the CLI and the UI never hold engine objects with behaviour.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

NodeKind = Literal["run", "lm", "code", "llm_query", "rlm_query", "final"]
Status = Literal["running", "ok", "error", "limit", "interrupted"]
TERMINAL_STATUSES = ("ok", "error", "limit", "interrupted")

_last_id = 0


def new_id() -> str:
    """Time-sortable id: 16 hex digits of microseconds since the epoch plus 6 random hex digits."""
    global _last_id
    now = time.time_ns() // 1000
    # ids made in the same microsecond must still sort in creation order
    _last_id = max(now, _last_id + 1)
    return f"{_last_id:016x}{os.urandom(3).hex()}"


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
    assignments: dict[str, list[str]] = field(default_factory=dict)


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
