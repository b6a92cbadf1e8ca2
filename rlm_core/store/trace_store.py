"""TraceStore: the DuckDB index of every run (traces/rlm.duckdb) plus content-addressed blobs.

One process owns the file. Node events are buffered and flushed in batches (a background
thread, every 100 ms); the JSONL journals written beside them are the durable log, re-read on
open so a crash between flushes loses nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rlm_core.store import light
from rlm_core.store.blobs import blob_path, write_blob
from rlm_core.store.columns import NODE_COLUMNS, NODE_SCHEMA, RUN_COLUMNS, TEXT_FIELDS
from rlm_core.store.journal import process_alive, read_header, read_journal
from rlm_core.store.migrations import migrate
from rlm_core.types import Node, RunSummary

BIG_TEXT = 64 * 1024
"""Node texts longer than this are stored once as a blob; the row keeps a preview."""
PREVIEW_CHARS = 4_000


class StoreBusy(Exception):
    """Another process holds the database file (DuckDB allows one writer process)."""


def default_traces_dir() -> Path:
    return Path(os.environ.get("RLM_TRACES_DIR") or "traces")


_OPEN_STORES: weakref.WeakSet[TraceStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """Stores still open at exit (the app's cached one, a script's) are flushed and closed: the
    last rows land in the database, and DuckDB objects alive at exit make its bindings print a
    long, alarming "nanobind: leaked instance" list when the app is stopped."""
    for store in list(_OPEN_STORES):
        store.close()


class TraceStore:
    def __init__(self, traces_dir: str | Path | None = None, *, flush_interval_s: float = 0.1):
        self.dir = Path(traces_dir) if traces_dir else default_traces_dir()
        self.blob_dir = self.dir / "blobs"
        self.journal_dir = self.dir / "journal"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.dir / "rlm.duckdb"))
        except duckdb.IOException as exc:
            raise StoreBusy(
                f"The trace database {self.dir / 'rlm.duckdb'} is in use by another process."
            ) from exc
        migrate(self._con)
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self.recover()
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(flush_interval_s,), name="trace-flush", daemon=True
        )
        self._flusher.start()
        _OPEN_STORES.add(self)

    # ---- writing -------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not shared across threads)."""
        return self._con.cursor()

    def write(self, node: Node) -> None:
        row = self._row(node)
        with self._lock:
            self._pending[node.node_id] = row

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._pending = list(self._pending.values()), {}
            if rows:
                self._insert(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        cur = self.cursor()
        batch = pa.Table.from_pylist(rows, schema=NODE_SCHEMA)
        cur.register("node_batch", batch)
        cur.execute("BEGIN")
        cur.execute("INSERT OR REPLACE INTO nodes SELECT * FROM node_batch")
        for row in rows:
            if row["kind"] == "run" and row["parent_id"] is None:
                self._upsert_run(cur, row)
        cur.execute("COMMIT")
        cur.unregister("node_batch")

    def _upsert_run(self, cur: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
        meta = json.loads(row["meta"] or "{}")
        values = [
            row["run_id"],
            row["started_at"],
            row["ended_at"],
            meta.get("question", row["input"]),
            meta.get("root_model"),
            meta.get("sub_model"),
            row["status"],
            meta.get("limit"),
            meta.get("answer", row["output"]),
            row["error"],
            meta.get("iterations", 0),
            meta.get("llm_calls", 0),
            row["tokens_in"],
            row["tokens_out"],
            row["cost_usd"],
            meta.get("context_sha"),
            meta.get("context_chars"),
            json.dumps(meta.get("config", {})),
        ]
        updates = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
        cur.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(RUN_COLUMNS))}) ON CONFLICT (run_id) DO UPDATE SET {updates}",
            values,
        )

    def _row(self, node: Node) -> dict[str, Any]:
        row = node.to_dict()
        blobs: dict[str, str] = {}
        for name in TEXT_FIELDS:
            text = row[name]
            if text is not None and len(text) > BIG_TEXT:
                blobs[name] = write_blob(self.blob_dir, text.encode("utf-8", "surrogatepass"))
                row[name] = text[:PREVIEW_CHARS]
        meta = dict(row.pop("meta"))
        if blobs:
            meta["blobs"] = blobs
        row["meta"] = json.dumps(meta, default=str)
        row["context_spans"] = json.dumps(row["context_spans"])
        return {c: row.get(c) for c in NODE_COLUMNS}

    def _flush_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            self.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join()
        self.flush()
        self._con.close()

    # ---- blobs ---------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        return blob_path(self.blob_dir, sha)

    def read_blob(self, sha: str) -> str:
        return self.blob_path(sha).read_text(encoding="utf-8", errors="surrogatepass")

    # ---- journals and recovery -----------------------------------------------------------

    def journal_path(self, run_id: str) -> Path:
        return self.journal_dir / f"{run_id}.jsonl"

    def import_journals(self) -> list[str]:
        """Read new lines of every journal into the tables; returns the run ids touched."""
        cur = self.cursor()
        offsets = dict(cur.execute("SELECT path, byte_offset FROM journals").fetchall())
        touched = []
        for path in sorted(self.journal_dir.glob("*.jsonl")):
            start = offsets.get(path.name, 0)
            if path.stat().st_size <= start:
                continue
            header = read_header(path)
            if header is None or header.get("pid") == os.getpid():
                # this process writes its own runs to the tables directly; re-reading its
                # journal could put an older state of a node over a newer one (and a live
                # run's journal, read whole every few seconds, would cost more as it grows)
                continue
            _, nodes, end = read_journal(path, start)
            self.flush()
            if nodes:
                latest = {n.node_id: self._row(n) for n in nodes}
                self._insert(list(latest.values()))
                touched.append(str(header["run_id"]))
            cur.execute("INSERT OR REPLACE INTO journals VALUES (?, ?)", [path.name, end])
        return touched

    def mark_journal_synced(self, run_id: str) -> None:
        """The tables hold everything this process journaled for the run: skip it on re-import."""
        path = self.journal_path(run_id)
        if path.exists():
            self.flush()
            self.cursor().execute(
                "INSERT OR REPLACE INTO journals VALUES (?, ?)", [path.name, path.stat().st_size]
            )

    def recover(self) -> list[str]:
        """Import journals, then mark runs whose writer process is gone as interrupted."""
        self.import_journals()
        cur = self.cursor()
        rows = cur.execute(
            "SELECT run_id, meta FROM nodes WHERE kind = 'run' AND parent_id IS NULL "
            "AND status = 'running'"
        ).fetchall()
        dead = []
        for run_id, meta_text in rows:
            meta = json.loads(meta_text or "{}")
            if process_alive(int(meta.get("pid", -1)), str(meta.get("host", ""))):
                continue
            dead.append(run_id)
            last = cur.execute(
                "SELECT max(coalesce(ended_at, started_at)) FROM nodes WHERE run_id = ?", [run_id]
            ).fetchone()
            ended = last[0] if last else time.time()
            cur.execute("BEGIN")
            cur.execute(
                "UPDATE nodes SET status = 'interrupted', ended_at = coalesce(ended_at, ?), "
                "error = coalesce(error, 'the process running it stopped') "
                "WHERE run_id = ? AND status = 'running'",
                [ended, run_id],
            )
            cur.execute(
                "UPDATE runs SET status = 'interrupted', ended_at = ? WHERE run_id = ?",
                [ended, run_id],
            )
            cur.execute("COMMIT")
        return dead

    # ---- reading -------------------------------------------------------------------------

    def list_runs(
        self,
        search: str | None = None,
        status: str | None = None,
        model: str | None = None,
        limit: int = 1000,
    ) -> list[RunSummary]:
        """Run summaries, newest first; `search` matches question, answer, name, tags, id."""
        self.flush()
        where, params = ["1=1"], []
        if search:
            where.append(
                "(question ILIKE ? OR answer ILIKE ? OR name ILIKE ? OR run_id ILIKE ? "
                "OR array_to_string(tags, ' ') ILIKE ?)"
            )
            params += [f"%{search}%"] * 5
        if status:
            where.append("status = ?")
            params.append(status)
        if model:
            where.append("(root_model = ? OR sub_model = ?)")
            params += [model, model]
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT ?"
        return [_summary(r) for r in self._dicts(self.cursor().execute(sql, [*params, limit]))]

    def get_run(self, run_id: str) -> RunSummary | None:
        self.flush()
        rows = self._dicts(self.cursor().execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        return _summary(rows[0]) if rows else None

    def nodes(self, run_id: str) -> list[Node]:
        """Every node of a run tree in execution order; big texts as previews (see `node`)."""
        self.flush()
        cur = self.cursor().execute(
            "SELECT * FROM nodes WHERE run_id = ? ORDER BY node_id", [run_id]
        )
        return [self._node(row) for row in self._dicts(cur)]

    def node(self, node_id: str) -> Node | None:
        """One node with its big texts read back from blobs."""
        self.flush()
        rows = self._dicts(
            self.cursor().execute("SELECT * FROM nodes WHERE node_id = ?", [node_id])
        )
        return self._full(self._node(rows[0])) if rows else None

    def full_nodes(self, run_id: str, node_ids: list[str]) -> list[Node]:
        """These nodes of a run with their big texts read back, in execution order."""
        self.flush()
        sql = "SELECT * FROM nodes WHERE run_id = ? AND list_contains(?, node_id) ORDER BY node_id"
        rows = self._dicts(self.cursor().execute(sql, [run_id, node_ids]))
        return [self._full(self._node(row)) for row in rows]

    def _full(self, node: Node) -> Node:
        for name, sha in node.meta.get("blobs", {}).items():
            setattr(node, name, self.read_blob(sha))
        return node

    def outline(self, run_id: str) -> list[Node]:
        """Every node of a run without its texts (`light.outline`): what a page loads first."""
        self.flush()
        return light.outline(self.cursor(), run_id)

    def previews(self, run_id: str, node_ids: list[str]) -> dict[str, str]:
        """Short texts of a few nodes of a run, for tooltips (`light.previews`)."""
        return light.previews(self.cursor(), run_id, node_ids)

    def table_page(
        self, run_id: str, where: light.TableFilter, limit: int, offset: int = 0
    ) -> light.TablePage:
        """One filtered page of a run's node table, filtered and paged in SQL."""
        self.flush()
        return light.table_page(self.cursor(), run_id, where, limit, offset)

    def context(self, run_node_id: str) -> Any:
        """The context object a run (root or child) was given, or None if its blob is gone."""
        node = self.node(run_node_id)
        sha = node.meta.get("context_sha") if node else None
        if node is None or not sha or not self.blob_path(sha).exists():
            return None
        text = self.read_blob(sha)
        return json.loads(text) if node.meta.get("context_kind") == "json" else text

    def delete_run(self, run_id: str) -> None:
        self.flush()
        cur = self.cursor()
        cur.execute("BEGIN")
        cur.execute("DELETE FROM nodes WHERE run_id = ?", [run_id])
        cur.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        cur.execute("DELETE FROM journals WHERE path = ?", [f"{run_id}.jsonl"])
        cur.execute("COMMIT")
        # the journal would bring the run back on the next import
        self.journal_path(run_id).unlink(missing_ok=True)

    def rename_run(self, run_id: str, name: str | None) -> None:
        self.cursor().execute("UPDATE runs SET name = ? WHERE run_id = ?", [name or None, run_id])

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        clean = sorted({t.strip() for t in tags if t.strip()})
        self.cursor().execute("UPDATE runs SET tags = ? WHERE run_id = ?", [clean, run_id])

    @staticmethod
    def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @staticmethod
    def _node(row: dict[str, Any]) -> Node:
        row["context_spans"] = json.loads(row["context_spans"] or "[]")
        row["meta"] = json.loads(row["meta"] or "{}")
        return Node.from_dict(row)


def _summary(row: dict[str, Any]) -> RunSummary:
    config = row.get("config")
    row["config"] = json.loads(config) if isinstance(config, str) else (config or {})
    row["tags"] = list(row.get("tags") or [])
    return RunSummary(**row)


class StoreSink:
    """Adapts a TraceStore to the tracer's sink protocol; closing a run flushes, not closes."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def write(self, node: Node) -> None:
        self.store.write(node)

    def close(self) -> None:
        self.store.flush()
