"""What every RLM of one run tree shares: the config, its models, the budget, one clock, the
tracer, the blob folder and the index of the root context.

The budget (budget.py) and the clock are checked before each model call and each code cell, so
nothing starts past a limit; usage counts calls, tokens and cost over the whole tree, children
included.
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
from rlm_core.engine.budget import Budget
from rlm_core.engine.scripted import RECURSIVE
from rlm_core.engine.spans import ContextIndex
from rlm_core.errors import LimitExceeded, RunCancelled, Stop
from rlm_core.models.model import Model, Role
from rlm_core.repl.process import ContextRef
from rlm_core.repl.sandbox import ReplFactory
from rlm_core.secrets import Scrubber
from rlm_core.store.blobs import blob_path, write_blob
from rlm_core.trace import Tracer


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


def child_root_model(config: RLMConfig) -> str:
    """The root model of child RLMs: the configured one, else the sub model, except under a
    `demo/recursive` root, whose children are `demo/recursive` too. The scripted sub model as a
    root would run the map script and start no child, so max depth would change nothing."""
    if config.child_root_model:
        return config.child_root_model
    return config.root_model if config.root_model == RECURSIVE else config.sub_model


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

    @property
    def enabled(self) -> tuple[str, ...]:
        """The models the user chose for this run: the only ones model code may name."""
        cfg = self.config
        names = (cfg.root_model, cfg.sub_model, cfg.child_root_model)
        return tuple(dict.fromkeys(name for name in names if name))

    def root(self, depth: int) -> Model:
        """The root model of an RLM at `depth` (a child's is the child root model)."""
        cfg = self.config
        return self.get(cfg.root_model if depth == 0 else child_root_model(cfg), "root")

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
    scrubber: Scrubber = field(default_factory=lambda: Scrubber([]))
    """Masks the run's keys in what model code sends and gets back (the tracer has the same)."""
    stopped: Stop | None = None
    """The first refused call's reason: from then on calls are refused without a node."""
    output_chars: int | None = None
    """A cell's output cap for every RLM of the tree, not fitted to the root model's window:
    a replay or fork shows what the recorded run showed, or its recorded turns would not match."""
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)

    def first_stop(self, exc: Stop) -> bool:
        """Remember why calls are refused; True only for the first refusal of the run tree,
        which alone is recorded (a loop of refused calls must not write a node each)."""
        with self._stop_lock:
            first = self.stopped is None
            self.stopped = self.stopped or exc
            return first

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
