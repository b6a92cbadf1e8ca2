"""What every RLM of one run tree shares: config, the model client, the budget, the tracer.

The budget is checked before each model call (so no call starts past a limit) and counts
calls, tokens and cost over the whole tree, children included.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from rlm_core.config import RLMConfig
from rlm_core.models import LiteLLMClient
from rlm_core.provenance import ContextIndex
from rlm_core.repl.sandbox import ContextRef
from rlm_core.store import blob_path, write_blob
from rlm_core.trace import Tracer
from rlm_core.types import Completion, LimitExceeded, ModelError, Node, RunCancelled, Status


class Model(Protocol):
    """Anything that answers chat messages; LiteLLMClient in production, fakes in tests."""

    def complete(
        self, model: str, messages: list[dict[str, str]], *, timeout_s: float | None = None
    ) -> Completion: ...


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
        return None if self.cost_unknown else self.cost_usd


@dataclass
class Tree:
    """What every RLM of one run tree shares: config, models, budget, tracer, the root context."""

    config: RLMConfig
    model: Model
    tracer: Tracer
    run_id: str
    blob_dir: Path
    index: ContextIndex
    cancel: threading.Event
    started: float = field(default_factory=time.time)
    usage: Usage = field(default_factory=Usage)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def deadline(self) -> float | None:
        t = self.config.timeout_s
        return self.started + t if t else None

    def reserve_call(self) -> None:
        """Count one model call, or raise if any tree-wide limit forbids making it."""
        cfg = self.config
        with self.lock:
            if self.cancel.is_set():
                raise RunCancelled("stopped by the user")
            if self.deadline and time.time() >= self.deadline:
                raise LimitExceeded("timeout_s", f"the run took longer than {cfg.timeout_s} s")
            if cfg.max_llm_calls is not None and self.usage.calls >= cfg.max_llm_calls:
                raise LimitExceeded("max_llm_calls", f"{cfg.max_llm_calls} model calls made")
            used = self.usage.tokens_in + self.usage.tokens_out
            if cfg.max_tokens is not None and used >= cfg.max_tokens:
                raise LimitExceeded("max_tokens", f"{used:,} of {cfg.max_tokens:,} tokens used")
            if cfg.max_cost_usd is not None and self.usage.cost_usd >= cfg.max_cost_usd:
                raise LimitExceeded("max_cost_usd", f"${self.usage.cost_usd:.4f} spent")
            self.usage.calls += 1

    def call(self, model: str, messages: list[dict[str, str]], node: Node) -> Completion:
        """One traced model call: budget check, the call, usage on the node."""
        try:
            self.reserve_call()
        except (LimitExceeded, RunCancelled) as exc:
            status: Status = "limit" if isinstance(exc, LimitExceeded) else "interrupted"
            self.tracer.end(node, status, error=f"not called: {exc}")
            raise
        node.model = model
        timeout = self.config.request_timeout_s
        if self.deadline:
            timeout = max(1.0, min(timeout, self.deadline - time.time()))
        try:
            if isinstance(self.model, LiteLLMClient):  # it alone retries, so it alone waits
                done = self.model.complete(
                    model, messages, timeout_s=timeout, deadline=self.deadline, cancel=self.cancel
                )
            else:
                done = self.model.complete(model, messages, timeout_s=timeout)
        except ModelError as exc:
            retried = list(exc.retry_errors)
            meta = {**node.meta, "retries": len(retried), "retry_errors": retried}
            # a failure caused by the Stop button or the run's clock ends the run as such
            stop: LimitExceeded | RunCancelled | None = None
            if self.cancel.is_set():
                stop = RunCancelled("stopped by the user")
            elif self.deadline and (exc.out_of_time or time.time() >= self.deadline - 1.0):
                stop = LimitExceeded(
                    "timeout_s", f"the run took longer than {self.config.timeout_s} s"
                )
            ended: Status = (
                "error"
                if stop is None
                else "interrupted"
                if isinstance(stop, RunCancelled)
                else "limit"
            )
            self.tracer.end(node, ended, error=str(exc), meta=meta)
            if stop is not None:
                raise stop from None
            raise
        with self.lock:
            self.usage.add(done)
        self.tracer.end(
            node,
            "ok",
            output=done.text,
            tokens_in=done.tokens_in,
            tokens_out=done.tokens_out,
            cost_usd=done.cost_usd,
            latency_s=done.latency_s,
            meta={**node.meta, "finish_reason": done.finish_reason}
            | ({"replayed": True} if done.replayed else {})
            | (
                {"retries": len(done.retry_errors), "retry_errors": done.retry_errors}
                if done.retry_errors
                else {}
            ),
        )
        return done

    def context_ref(self, context: Any) -> ContextRef:
        kind: Literal["text", "json"]
        if isinstance(context, str):
            data, kind = context.encode("utf-8", "surrogatepass"), "text"
        else:
            data, kind = json.dumps(context, ensure_ascii=False).encode(), "json"
        return ContextRef(
            path=str(blob_path(self.blob_dir, write_blob(self.blob_dir, data))), kind=kind
        )
