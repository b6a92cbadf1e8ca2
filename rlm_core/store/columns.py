"""The columns of the nodes and runs tables as the store writes them: the Arrow schema of a
batch of node rows, and the run columns upserted from a root run node."""

from __future__ import annotations

import pyarrow as pa

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
