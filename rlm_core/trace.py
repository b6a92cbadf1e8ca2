"""Tracer: hands every node event to its sinks as it happens (start, then end).

The sinks that make it durable (the JSONL journal, the DuckDB store) live in `rlm_core.store`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from rlm_core.secrets import Scrubber
from rlm_core.types import Node, Status


class TraceSink(Protocol):
    def write(self, node: Node) -> None: ...

    def close(self) -> None: ...


class Tracer:
    """Thread-safe fan-out of node events; nodes are mutated in place and rewritten on end.

    With a scrubber, every node has its secrets masked (in place) before any sink sees it.
    """

    def __init__(self, sinks: list[TraceSink], scrubber: Scrubber | None = None) -> None:
        self.sinks = sinks
        self.scrubber = scrubber or Scrubber([])
        self._lock = threading.Lock()

    def start(self, node: Node) -> Node:
        self._emit(node)
        return node

    def end(self, node: Node, status: Status = "ok", **fields: Any) -> Node:
        for name, value in fields.items():
            setattr(node, name, value)
        node.status = status
        node.ended_at = time.time()
        self._emit(node)
        return node

    def _emit(self, node: Node) -> None:
        self.scrubber.node(node)
        with self._lock:
            for sink in self.sinks:
                sink.write(node)

    def close(self) -> None:
        with self._lock:
            for sink in self.sinks:
                sink.close()


class MemorySink:
    """Keeps the latest state of every node; used by tests and by callers without a store."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def write(self, node: Node) -> None:
        self.nodes[node.node_id] = Node.from_dict(node.to_dict())

    def close(self) -> None:
        pass
