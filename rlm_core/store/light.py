"""Light reads of the nodes table, so that a page pays for what it shows: a run's outline (no
texts), short previews of a few nodes, and one filtered page of the node table, all in SQL.
`TraceStore` exposes them; each function takes a cursor of its own thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from rlm_core.types import Node

OUTLINE_META = (
    "iteration",
    "batch",
    "batch_index",
    "batch_size",
    "child_run",
    "used_by",
    "assignments",
    "sources",
    "var",
    "from_node",
    "replayed",
    "finish_reason",
    "forked_from",
    "replay_of",
    "limit",
    "fallback_from",
    "timed_out",
    "restarted",
    "ran_for_model",
    "refused_calls",
    "isolation",
    "prompt",
)
"""The meta keys an outline node keeps: what the graph, step order, rollups and jump buttons
read. Documents' and models' texts (question, answer, variables) stay in the store."""
ERROR_CHARS = 200
"""An outline node's `error` is cut to this: enough for a tooltip and to know it failed."""
PREVIEW_SQL = (
    "left(coalesce(error, CASE WHEN kind = 'lm' THEN output "
    "ELSE coalesce(output, code, input) END, ''), 400)"
)
"""What a node's one-line preview starts from (an lm call's input is the whole conversation)."""
SEARCHED = ("input", "output", "code", "stdout", "stderr", "error", "node_id")
_OUTLINE_SQL = (
    "SELECT node_id, run_id, parent_id, kind, depth, seq, status, started_at, ended_at, model, "
    f"tokens_in, tokens_out, cost_usd, latency_s, left(error, {ERROR_CHARS}), meta "
    "FROM nodes WHERE run_id = ? ORDER BY node_id"
)


def outline(cur: duckdb.DuckDBPyConnection, run_id: str) -> list[Node]:
    """Every node of a run in execution order, without texts: `input`, `output`, `code`,
    `stdout`, `stderr`, `model_view` are None, `error` is cut, `meta` holds OUTLINE_META only."""
    out = []
    for row in cur.execute(_OUTLINE_SQL, [run_id]).fetchall():
        node_id, run, parent, kind, depth, seq, status, started, ended, model = row[:10]
        tokens_in, tokens_out, cost, latency, error, meta_text = row[10:]
        meta = json.loads(meta_text or "{}")
        node = Node(
            *(node_id, run, parent, kind, depth, seq, status, started, ended, model),
            error=error,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            latency_s=latency,
            meta={k: meta[k] for k in OUTLINE_META if k in meta},
        )
        out.append(node)
    return out


def previews(cur: duckdb.DuckDBPyConnection, run_id: str, node_ids: list[str]) -> dict[str, str]:
    """node id -> the start of its error, output, code or input (for tooltips)."""
    if not node_ids:
        return {}
    rows = cur.execute(
        f"SELECT node_id, {PREVIEW_SQL} FROM nodes WHERE run_id = ? AND list_contains(?, node_id)",
        [run_id, node_ids],
    ).fetchall()
    return {node_id: text for node_id, text in rows if text}


@dataclass(frozen=True)
class TableFilter:
    """The node table's filters; an empty one lets everything through."""

    kinds: tuple[str, ...] = ()
    depths: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class TablePage:
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    """Rows matching the filter, over all pages."""
    offset: int = 0
    """Where the page starts: 0 when the one asked for is past the end (the filter shrank)."""


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def table_page(
    cur: duckdb.DuckDBPyConnection, run_id: str, where: TableFilter, limit: int, offset: int
) -> TablePage:
    """One page of the node table in execution order; `step` counts over the whole run."""
    conds: list[str] = []
    params: list[object] = []
    for column, values in (("kind", where.kinds), ("depth", where.depths)):
        if values:
            conds.append(f"list_contains(?, {column})")
            params.append(list(values))
    if where.statuses:
        conds.append("list_contains(?, status)")
        params.append(list(where.statuses))
    needle = where.text.strip()
    if needle:
        conds.append("(" + " OR ".join(f"{c} ILIKE ? ESCAPE '\\'" for c in SEARCHED) + ")")
        params += [_like(needle)] * len(SEARCHED)
    sql = (
        "WITH steps AS (SELECT row_number() OVER (ORDER BY node_id) AS step, * FROM nodes "
        "WHERE run_id = ?) "
        "SELECT step, kind, depth, status, model, tokens_in, tokens_out, cost_usd, latency_s, "
        f"{PREVIEW_SQL} AS preview, node_id, count(*) OVER () AS total FROM steps "
        f"WHERE {' AND '.join(conds) or 'true'} ORDER BY step LIMIT ? OFFSET ?"
    )
    found = cur.execute(sql, [run_id, *params, limit, offset]).fetchall()
    if not found and offset:
        return table_page(cur, run_id, where, limit, 0)
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in found]
    total = int(rows[0]["total"]) if rows else 0
    for row in rows:
        del row["total"]
    return TablePage(rows, total, offset)
