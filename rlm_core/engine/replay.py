"""Replay a recorded run with no model calls, fork it at any lm or code node, or re-ask one
sub-call with another prompt or model. The replaying model itself is `models/replay.py`."""

from __future__ import annotations

import threading
from typing import Any

from rlm_core.config import RLMConfig
from rlm_core.engine import prompts
from rlm_core.engine.parsing import replace_code_block
from rlm_core.engine.rlm import RLM, default_models
from rlm_core.models.model import Model, Role
from rlm_core.models.replay import (
    ForkPoint,
    Recording,
    ReplayModel,
    full_messages,
    message_key,
    recorded_calls,
)
from rlm_core.models.resolve import model_for
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Completion, Node, RunResult


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
    if config.prompt == "auto" and (pinned := prompts.choice_of(root.meta.get("prompt"))):
        # what "auto" picked then (a server may say otherwise now, or be gone)
        config = config.with_(prompt=pinned)
    return nodes, root, context, config


def _pinned(root: Node, config: RLMConfig) -> dict[str, Any]:
    """The run meta that fixes a replay's output cap to the recorded run's (older traces
    recorded none: they showed the configured cap), whatever the root model's window now."""
    shown = root.meta.get("output_chars")
    return {"output_chars": shown if isinstance(shown, int) else config.max_output_chars}


def replay_run(store: TraceStore, run_id: str) -> RunResult:
    """Run again from the recorded responses only: no model is called."""
    nodes, root, context, config = _recorded(store, run_id)
    recording = Recording(recorded_calls(nodes))

    def replayed(name: str, role: Role) -> Model:
        return ReplayModel(name, recording)

    rlm = RLM(config=config, store=store, models=replayed)
    return rlm.run(
        context, root.input or "", run_meta={"replay_of": run_id, **_pinned(root, config)}
    )


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
    if node.meta.get("ran_for_model"):
        raise ValueError("the engine ran this search for the model: fork from the lm call after it")
    lm = node if node.kind == "lm" else _lm_of(nodes, node)
    if code is not None:
        block = int(node.meta.get("block", 1)) if node.kind == "code" else 1
        response = replace_code_block(lm.output or "", block, code)
    config = config.with_(**(changes or {}), api_key=api_key)
    live = default_models(config)
    recording = Recording(
        recorded_calls(nodes), ForkPoint(message_key(full_messages(nodes, lm)), response)
    )

    def forked(name: str, role: Role) -> Model:
        return ReplayModel(name, recording, live(name, role))

    rlm = RLM(config=config, store=store, models=forked)
    edits = {"response": response is not None, "code": code is not None, **(changes or {})}
    changed_cap = "max_output_chars" in (changes or {})
    meta = {
        **({} if changed_cap else _pinned(root, config)),
        "forked_from": {
            "run_id": run_id,
            "node_id": node_id,
            "lm_node_id": lm.node_id,
            "edits": edits,
        },
    }
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
    client = model_for(model, api_base=api_base, api_key=api_key, retries=1)
    return client.complete([{"role": "user", "content": prompt}])
