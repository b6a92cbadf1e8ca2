"""What every RLM of one run tree shares: the config, its models, the budget, one clock, the
tracer, the blob folder and the index of the root context.

The budget and the clock are checked before each model call and each code cell, so nothing
starts past a limit; usage counts calls, tokens and cost over the whole tree, children included.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlm_core.config import RLMConfig
from rlm_core.engine.spans import ContextIndex
from rlm_core.errors import LimitExceeded, RunCancelled
from rlm_core.models.model import Model, Role
from rlm_core.repl.process import ContextRef
from rlm_core.repl.sandbox import ReplFactory
from rlm_core.store.blobs import blob_path, write_blob
from rlm_core.trace import Tracer
from rlm_core.types import Completion


@dataclass
class Clock:
    """The run's wall clock and its Stop button: `check()` raises whichever ended the run."""

    timeout_s: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)

    @property
    def deadline(self) -> float | None:
        return self.started + self.timeout_s if self.timeout_s else None

    def timed_out(self, margin_s: float = 0.0) -> bool:
        deadline = self.deadline
        return deadline is not None and time.time() >= deadline - margin_s

    def check(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled("stopped by the user")
        if self.timed_out():
            raise LimitExceeded("timeout_s", f"the run took longer than {self.timeout_s} s")

    def elapsed(self) -> float:
        return time.time() - self.started


@dataclass
class Usage:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False

    def add(self, c: Completion) -> None:
        self.tokens_in += c.tokens_in or 0
        self.tokens_out += c.tokens_out or 0
        if c.cost_usd is None:
            self.cost_unknown = True
        else:
            self.cost_usd += c.cost_usd

    @property
    def cost(self) -> float | None:
        """None when any call's cost was unknown (never counted as zero)."""
        return None if self.cost_unknown else self.cost_usd


@dataclass
class Budget:
    """The tree-wide limits on calls, tokens and cost, and what has been used of them."""

    config: RLMConfig
    usage: Usage = field(default_factory=Usage)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve_call(self) -> None:
        """Count one model call, or raise if a limit forbids making it."""
        cfg, used = self.config, self.usage
        with self.lock:
            if cfg.max_llm_calls is not None and used.calls >= cfg.max_llm_calls:
                raise LimitExceeded("max_llm_calls", f"{cfg.max_llm_calls} model calls made")
            tokens = used.tokens_in + used.tokens_out
            if cfg.max_tokens is not None and tokens >= cfg.max_tokens:
                raise LimitExceeded("max_tokens", f"{tokens:,} of {cfg.max_tokens:,} tokens used")
            if cfg.max_cost_usd is not None and used.cost_usd >= cfg.max_cost_usd:
                raise LimitExceeded("max_cost_usd", f"${used.cost_usd:.4f} spent")
            used.calls += 1

    def spent(self, completion: Completion) -> None:
        with self.lock:
            self.usage.add(completion)


ModelFactory = Callable[[str, Role], Model]
"""Makes the model for a name in a role; chosen at the edge (engine/rlm.py, a replay, a test)."""


class Models:
    """The models of one run tree, each made once per (name, role)."""

    def __init__(self, config: RLMConfig, factory: ModelFactory) -> None:
        self.config, self._factory = config, factory
        self._made: dict[tuple[str, Role], Model] = {}
        self._lock = threading.Lock()

    def get(self, name: str, role: Role) -> Model:
        with self._lock:
            if (name, role) not in self._made:
                self._made[name, role] = self._factory(name, role)
            return self._made[name, role]

    def root(self, depth: int) -> Model:
        """The root model of an RLM at `depth` (a child's is the child root model)."""
        cfg = self.config
        name = cfg.root_model if depth == 0 else (cfg.child_root_model or cfg.sub_model)
        return self.get(name, "root")

    def sub(self, name: str | None = None) -> Model:
        return self.get(name or self.config.sub_model, "sub")


@dataclass
class Run:
    """One run tree: everything its RLMs (the root and every child) share."""

    config: RLMConfig
    models: Models
    tracer: Tracer
    run_id: str
    blob_dir: Path
    index: ContextIndex
    clock: Clock
    budget: Budget
    repl: ReplFactory
    """Makes each RLM's REPL: the sandbox, or a test's in-process fake."""

    def context_ref(self, context: Any) -> ContextRef:
        """Where a REPL worker loads this context from: a content-addressed blob."""
        kind: Literal["text", "json"]
        if isinstance(context, str):
            data, kind = context.encode("utf-8", "surrogatepass"), "text"
        else:
            data, kind = json.dumps(context, ensure_ascii=False).encode(), "json"
        sha = write_blob(self.blob_dir, data)
        # the worker gets its context as an fd and must not see the traces folder at all
        traces = str(self.blob_dir.parent)
        return ContextRef(path=str(blob_path(self.blob_dir, sha)), kind=kind, hide=(traces,))
