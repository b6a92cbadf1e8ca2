"""Nodes as rows of the DuckDB index: the `nodes` columns, big texts moved to blobs, and the
`runs` summary row derived from a root run node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from rlm_core.store.blobs import write_blob
from rlm_core.types import Node

BIG_TEXT = 64 * 1024
"""Node texts longer than this are stored once as a blob; the row keeps a preview."""
PREVIEW_CHARS = 4_000
TEXT_FIELDS = ("input", "output", "code", "stdout", "stderr", "model_view")

NODE_SCHEMA = pa.schema(
    [
        ("node_id", pa.string()),
        ("run_id", pa.string()),
        ("parent_id", pa.string()),
        ("kind", pa.string()),
        ("depth", pa.int32()),
        ("seq", pa.int32()),
        ("status", pa.string()),
        ("started_at", pa.float64()),
        ("ended_at", pa.float64()),
        ("model", pa.string()),
        *[(name, pa.string()) for name in TEXT_FIELDS],
        ("error", pa.string()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("context_spans", pa.string()),
        ("meta", pa.string()),
    ]
)
NODE_COLUMNS = [f.name for f in NODE_SCHEMA]
RUN_COLUMNS = [
    "run_id",
    "created_at",
    "ended_at",
    "question",
    "root_model",
    "sub_model",
    "status",
    "limit_name",
    "answer",
    "error",
    "iterations",
    "llm_calls",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "context_sha",
    "context_chars",
    "config",
]


def node_row(node: Node, blob_dir: Path) -> dict[str, Any]:
    """The node as a `nodes` row; texts over BIG_TEXT are stored once as blobs."""
    row = node.to_dict()
    blobs: dict[str, str] = {}
    for name in TEXT_FIELDS:
        text = row[name]
        if text is not None and len(text) > BIG_TEXT:
            blobs[name] = write_blob(blob_dir, text.encode("utf-8", "surrogatepass"))
            row[name] = text[:PREVIEW_CHARS]
    meta = dict(row.pop("meta"))
    if blobs:
        meta["blobs"] = blobs
    row["meta"] = json.dumps(meta, default=str)
    row["context_spans"] = json.dumps(row["context_spans"])
    return {c: row.get(c) for c in NODE_COLUMNS}


def run_values(row: dict[str, Any]) -> list[Any]:
    """The `runs` row (RUN_COLUMNS) of a root run node's row. Its meta comes from journals and
    imports too: a value of the wrong type becomes NULL rather than failing the batch."""
    meta = json.loads(row["meta"] or "{}")
    return [
        row["run_id"],
        row["started_at"],
        row["ended_at"],
        _text(meta.get("question", row["input"])),
        _text(meta.get("root_model")),
        _text(meta.get("sub_model")),
        row["status"],
        _text(meta.get("limit")),
        _text(meta.get("answer", row["output"])),
        row["error"],
        _count(meta.get("iterations", 0)),
        _count(meta.get("llm_calls", 0)),
        row["tokens_in"],
        row["tokens_out"],
        row["cost_usd"],
        _text(meta.get("context_sha")),
        _count(meta.get("context_chars")),
        json.dumps(meta.get("config", {}), default=str),
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value < 2**31 else None
    )
