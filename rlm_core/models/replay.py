"""Replay: a model that answers from a recorded run instead of calling anything.

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

from rlm_core.errors import ModelError
from rlm_core.models.model import Model
from rlm_core.types import Completion, Node


def message_key(messages: list[dict[str, str]]) -> str:
    text = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def full_messages(nodes: list[Node], lm: Node) -> list[dict[str, str]]:
    """The whole message list an lm node sent: the deltas of its run's earlier lm calls + its own.

    The last-chance question of a run out of turns is appended after the previous call's delta,
    so concatenating deltas in order rebuilds exactly what was sent, less the turns the loop
    took back (a delta then starts before the end of the last: `messages_before`).
    """
    messages: list[dict[str, str]] = []
    for node in nodes:
        if node.kind == "lm" and node.parent_id == lm.parent_id and node.node_id <= lm.node_id:
            before = node.meta.get("messages_before")
            messages = messages[:before] if isinstance(before, int) else messages
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


class Recording:
    """The recorded calls of one run, shared by every model of its replay: once the fork point
    is passed, no model of the new run is served from the recording any more."""

    def __init__(self, calls: dict[str, deque[Completion]], fork: ForkPoint | None = None):
        self.calls, self.fork = calls, fork
        self.diverged = False
        self._lock = threading.Lock()

    def take(self, key: str) -> tuple[Completion | None, bool]:
        """(the recorded answer, False), or (None, True at the fork point / False past it)."""
        with self._lock:
            if self.fork is not None and key == self.fork.key and not self.diverged:
                self.diverged = True
                return None, True
            if not self.diverged and self.calls.get(key):
                return self.calls[key].popleft(), False
        return None, False


class ReplayModel:
    """Serves recorded responses until the fork point, then (if given) the live model.

    Without a fork and without a live model it is a pure replay: a call the recorded run never
    made means the run diverged, and raises ModelError.
    """

    def __init__(self, name: str, recording: Recording, live: Model | None = None) -> None:
        self.name, self.recording, self.live = name, recording, live

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        recorded, at_fork = self.recording.take(message_key(messages))
        if recorded is not None:
            return recorded
        fork = self.recording.fork
        if at_fork and fork is not None and fork.response is not None:
            return Completion(fork.response, self.name, None, None, 0.0, 0.0, "edited")
        if self.live is None:
            raise ModelError(
                f"Replay: this call to {self.name} is not in the recorded run (the run diverged)."
            )
        return self.live.complete(
            messages, deadline=deadline, cancel=cancel, max_output_tokens=max_output_tokens
        )
