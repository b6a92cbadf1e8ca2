"""The JSONL journal of one run tree: a header line, then one flushed line per node event.

It is the durable log: a killed process loses nothing it had finished, and the DuckDB store is
the queryable index rebuilt from journals on open.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlm_core.types import Node

JOURNAL_FORMAT = "rlm-tracer-journal/1"


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


def read_header(path: Path) -> dict[str, Any] | None:
    """The journal's header line (which run, written by which process), or None if unreadable."""
    with path.open("rb") as f:
        try:
            header = json.loads(f.readline())
        except ValueError:
            return None
    return header if isinstance(header, dict) else None


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
