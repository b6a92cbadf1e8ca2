"""Tracer: hands every node event to its sinks as it happens (start, then end).

The sinks that make it durable (the JSONL journal, the DuckDB store) live in `rlm_core.store`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from rlm_core.errors import DiskFull
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
        self._running: dict[str, Node] = {}
        self._closed = False
        self.failed: DiskFull | None = None
        """Set when the disk refused a write: nothing more is written for this run."""

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
            if self._closed or self.failed is not None:
                # the run is over (a sub-call from a thread of model code may still finish), or
                # the disk is full: its journal keeps everything that was written before
                return
            if node.status == "running":
                self._running[node.node_id] = node
            else:
                self._running.pop(node.node_id, None)
            try:
                for sink in self.sinks:
                    sink.write(node)
            except DiskFull as exc:
                self.failed = exc
                raise

    def cancel_running(self, why: str) -> None:
        """End every node still running as `cancelled`: its run ended before it did."""
        with self._lock:
            left = list(self._running.values())
        for node in left:
            self.end(node, "cancelled", error=why)

    def close(self) -> None:
        with self._lock:
            self._closed = True
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
