"""What both ends of the REPL pipe agree on: the names model code gets, and the frame format —
a 4-byte big-endian length, then one JSON object. Never pickle: the worker is untrusted.

Stdlib only: the worker (run with `python -I`) loads this file by path; the sandbox imports it.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, BinaryIO

SUB_CALLS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched")
RESERVED = ("context", *SUB_CALLS, "SHOW_VARS", "FINAL", "FINAL_VAR")
"""Names restored after every cell, whatever model code did to them."""
MAX_FRAME = 512 * 2**20


def write_frame(fd: int, frame: dict[str, Any]) -> None:
    """Write one whole frame (the caller holds the pipe's lock); OSError if the pipe is gone."""
    data = json.dumps(frame).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """The next frame, or None at the end of the stream; ValueError for a malformed one."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is too large")
    body = stream.read(size)
    if len(body) < size:
        return None
    frame = json.loads(body)
    if not isinstance(frame, dict):
        raise ValueError("frame is not a JSON object")
    return frame
