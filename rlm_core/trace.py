"""Tracer: hands every node event to its sinks as it happens (start, then end).

The journal sink appends one JSON line per event and flushes it, so a killed process loses
nothing it had finished; the DuckDB store is the queryable index rebuilt from journals.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from rlm_core.types import Node, Status

JOURNAL_FORMAT = "rlm-tracer-journal/1"


class TraceSink(Protocol):
    def write(self, node: Node) -> None: ...

    def close(self) -> None: ...


class Tracer:
    """Thread-safe fan-out of node events; nodes are mutated in place and rewritten on end."""

    def __init__(self, sinks: list[TraceSink]) -> None:
        self.sinks = sinks
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


class JournalSink:
    """Append-only JSONL log of one run tree: a header line, then one line per node event."""

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        header = {
            "journal": JOURNAL_FORMAT,
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        self._write_line(header)

    def _write_line(self, data: dict[str, Any]) -> None:
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        # flushed per event: a SIGKILL keeps every line already handed to the OS
        self._file.flush()

    def write(self, node: Node) -> None:
        if not self._file.closed:
            self._write_line(node.to_dict())

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path, offset: int = 0) -> tuple[dict[str, Any] | None, list[Node], int]:
    """Header, node events from `offset`, and the offset after the last complete line.

    A torn last line (the writer died mid-write) is left for a later read.
    """
    header: dict[str, Any] | None = None
    nodes: list[Node] = []
    with path.open("rb") as f:
        first = f.readline()
        try:
            header = json.loads(first)
        except ValueError:
            return None, [], offset
        if offset < len(first):
            offset = len(first)
        f.seek(offset)
        for raw in _complete_lines(f):
            offset += len(raw)
            try:
                nodes.append(Node.from_dict(json.loads(raw)))
            except (ValueError, TypeError):
                continue
    return header, nodes, offset


def _complete_lines(f: Any) -> Iterator[bytes]:
    for raw in f:
        if not raw.endswith(b"\n"):
            return
        yield raw


def process_alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell for another machine; leave its runs alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
