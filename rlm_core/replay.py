"""Replay a recorded run with no model calls, fork it at any lm or code node, or re-ask one
sub-call with another prompt or model.

A run's trace is its own replay cache: every `lm` node holds the messages it added and the
response, every `llm_query` node its prompt and answer. Responses are keyed by the messages
sent (not the model name), so a fork that switches models still replays what came before.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from rlm_core.config import RLMConfig
from rlm_core.models import LiteLLMClient
from rlm_core.parsing import replace_code_block
from rlm_core.rlm import RLM
from rlm_core.store import TraceStore
from rlm_core.tree import Model
from rlm_core.types import Completion, ModelError, Node, RunResult


def message_key(messages: list[dict[str, str]]) -> str:
    text = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def full_messages(nodes: list[Node], lm: Node) -> list[dict[str, str]]:
    """The whole message list an lm node sent: the deltas of its run's earlier lm calls + its own.

    The last-chance question of a run out of turns is appended after the previous call's delta,
    so concatenating deltas in order rebuilds exactly what was sent.
    """
    messages: list[dict[str, str]] = []
    for node in nodes:
        if node.kind == "lm" and node.parent_id == lm.parent_id and node.node_id <= lm.node_id:
            messages += json.loads(node.input or "[]")
    return messages


def recorded_calls(nodes: list[Node]) -> dict[str, deque[Completion]]:
    """Every model call of a run tree, by the key of what was sent, in call order."""
    calls: dict[str, deque[Completion]] = defaultdict(deque)
    for node in nodes:
        if node.status != "ok" or node.kind not in ("lm", "llm_query"):
            continue
        if node.kind == "lm":
            sent = full_messages(nodes, node)
        else:
            sent = [{"role": "user", "content": node.input or ""}]
        calls[message_key(sent)].append(
            Completion(
                text=node.output or "",
                model=node.model or "",
                tokens_in=node.tokens_in,
                tokens_out=node.tokens_out,
                cost_usd=0.0,  # replaying spends nothing
                latency_s=0.0,
                finish_reason=node.meta.get("finish_reason"),
                replayed=True,
            )
        )
    return calls


@dataclass
class ForkPoint:
    key: str
    """Message key of the root call where the new run leaves the recorded one."""
    response: str | None = None
    """A response to use at the fork point instead of calling the model."""


class ReplayModel:
    """Serves recorded responses until the fork point, then (if given) the live model.

    Without a fork and without a live model it is a pure replay: a call the recorded run never
    made means the run diverged, and raises ModelError.
    """

    def __init__(
        self,
        calls: dict[str, deque[Completion]],
        live: Model | None = None,
        fork: ForkPoint | None = None,
    ) -> None:
        self.calls, self.live, self.fork = calls, live, fork
        self.diverged = False
        self._lock = threading.Lock()

    def complete(
        self, model: str, messages: list[dict[str, str]], *, timeout_s: float | None = None
    ) -> Completion:
        key = message_key(messages)
        with self._lock:
            at_fork = self.fork is not None and key == self.fork.key and not self.diverged
            if at_fork:
                self.diverged = True
            elif not self.diverged and self.calls.get(key):
                return self.calls[key].popleft()
        if at_fork and self.fork is not None and self.fork.response is not None:
            return Completion(self.fork.response, model, None, None, 0.0, 0.0, "edited")
        if self.live is None:
            raise ModelError(
                f"Replay: this call to {model} is not in the recorded run (the run diverged)."
            )
        return self.live.complete(model, messages, timeout_s=timeout_s)


def _recorded(store: TraceStore, run_id: str) -> tuple[list[Node], Node, Any, RLMConfig]:
    nodes = [n for n in (store.node(x.node_id) for x in store.nodes(run_id)) if n is not None]
    if not nodes:
        raise ValueError(f"no run with id {run_id}")
    root = nodes[0]
    context = store.context(run_id)
    if context is None:
        raise ValueError(f"the context of run {run_id} is no longer stored")
    known = set(RLMConfig.__dataclass_fields__)
    config = RLMConfig(**{k: v for k, v in root.meta.get("config", {}).items() if k in known})
    return nodes, root, context, config


def replay_run(store: TraceStore, run_id: str) -> RunResult:
    """Run again from the recorded responses only: no model is called."""
    nodes, root, context, config = _recorded(store, run_id)
    model = ReplayModel(recorded_calls(nodes))
    rlm = RLM(config=config, store=store, model=model)
    return rlm.run(context, root.input or "", run_meta={"replay_of": run_id})


def fork_run(
    store: TraceStore,
    run_id: str,
    node_id: str,
    *,
    response: str | None = None,
    code: str | None = None,
    changes: dict[str, Any] | None = None,
    api_key: str | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """A new run that replays `run_id` up to `node_id` (an lm or code node of the root run), then
    goes on live with an edited response, edited code, other models or other limits."""
    nodes, root, context, config = _recorded(store, run_id)
    by_id = {n.node_id: n for n in nodes}
    node = by_id.get(node_id)
    if node is None or node.kind not in ("lm", "code") or node.depth != 0:
        raise ValueError("fork from an lm or code node of the root run")
    lm = node if node.kind == "lm" else _lm_of(nodes, node)
    if code is not None:
        block = int(node.meta.get("block", 1)) if node.kind == "code" else 1
        response = replace_code_block(lm.output or "", block, code)
    config = config.with_(**(changes or {}), api_key=api_key)
    live = LiteLLMClient(
        api_base=config.api_base, api_key=api_key, retries=config.retries,
        timeout_s=config.request_timeout_s, temperature=config.temperature,
    )  # fmt: skip
    fork = ForkPoint(message_key(full_messages(nodes, lm)), response)
    model = ReplayModel(recorded_calls(nodes), live, fork)
    rlm = RLM(config=config, store=store, model=model)
    edits = {"response": response is not None, "code": code is not None, **(changes or {})}
    meta = {"forked_from": {"run_id": run_id, "node_id": node_id, "lm_node_id": lm.node_id,
                            "edits": edits}}  # fmt: skip
    return rlm.run(context, root.input or "", run_meta=meta, cancel=cancel)


def _lm_of(nodes: list[Node], code: Node) -> Node:
    """The root call whose response held this code cell."""
    iteration = code.meta.get("iteration")
    for node in nodes:
        same_turn = node.meta.get("iteration") == iteration
        if node.kind == "lm" and node.parent_id == code.parent_id and same_turn:
            return node
    raise ValueError("the lm node of this code cell is not in the trace")


def ask_again(
    prompt: str, model: str, *, api_base: str | None = None, api_key: str | None = None
) -> Completion:
    """The playground: one sub-call with an edited prompt or another model, nothing else run."""
    client = LiteLLMClient(api_base=api_base, api_key=api_key, retries=1)
    return client.complete(model, [{"role": "user", "content": prompt}])
