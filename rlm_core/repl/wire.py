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
MAX_FRAME = 128 * 2**20
"""A larger frame is malformed: the worker is restarted. Bounds what the app reads at once."""
MAX_PROMPT_CHARS = 4_000_000
"""One prompt, about a million tokens: more than any sub model reads."""
MAX_CALL_BYTES = 64 * 2**20
"""One sub-call frame: all its prompts and contexts, as JSON."""


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame).encode()


def write_frame(fd: int, frame: dict[str, Any] | bytes) -> None:
    """Write one whole frame (the caller holds the pipe's lock); OSError if the pipe is gone."""
    data = frame if isinstance(frame, bytes) else encode(frame)
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], int] | None:
    """The next frame and its size in bytes, or None at the end of the stream; ValueError for a
    malformed one."""
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
    return frame, size


def call_refused(fn: str, args: dict[str, Any], size: int) -> str | None:
    """Why a sub-call of `size` bytes is too large to serve, or None. The worker checks before it
    sends (model code gets the reason as an error); the parent checks again, because the worker
    is untrusted, before anything of the call is written."""
    if size > MAX_CALL_BYTES:
        return (
            f"{fn}: its arguments take {size / 2**20:,.1f} MB, over the {MAX_CALL_BYTES // 2**20} "
            "MB one sub-call may carry; split the work into smaller calls"
        )
    prompts = args.get("prompts") if fn.endswith("_batched") else [args.get("prompt")]
    prompts = prompts if isinstance(prompts, list) else []
    longest = max((len(p) for p in prompts if isinstance(p, str)), default=0)
    if longest > MAX_PROMPT_CHARS:
        return (
            f"{fn}: a prompt of {longest:,} characters is over the {MAX_PROMPT_CHARS:,} one "
            "prompt may have (about a million tokens, more than any sub model reads); send a "
            "smaller part"
        )
    return None
