"""TraceStore: the DuckDB index of every run (traces/rlm.duckdb) plus content-addressed blobs.

One process owns the file. Node events are buffered and flushed in batches (a background
thread, every 100 ms); the JSONL journals written beside them are the durable log, re-read on
open so a crash between flushes loses nothing. The database is a cache of the journals (and of
`labels.jsonl`): a damaged one is rebuilt from them (recovery.py), a journal line that is not a
well-typed node is skipped and reported in `notes`, and a write the full disk refuses stays
pending instead of failing the run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rlm_core.store import light, recovery
from rlm_core.store.blobs import blob_path
from rlm_core.store.journal import JournalSink
from rlm_core.store.private import private_dirs, private_file
from rlm_core.store.recovery import StoreBusy as StoreBusy
from rlm_core.store.recovery import live, open_database, write_label
from rlm_core.store.rows import BIG_TEXT as BIG_TEXT
from rlm_core.store.rows import NODE_SCHEMA, RUN_COLUMNS, node_row, run_values
from rlm_core.types import Node, RunSummary, valid_id

_log = logging.getLogger(__name__)


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
        private_dirs(self.dir, self.blob_dir, self.journal_dir)
        self._con, fresh, rebuilt = open_database(self.dir / "rlm.duckdb")
        private_file(self.dir / "rlm.duckdb")
        self.notes: list[str] = [rebuilt] if rebuilt else []
        """What opening and reading the store had to skip or repair, for the user to see."""
        self._noted: set[str] = set()
        self.write_error: str | None = None
        """Why the last flush failed (a full disk); its rows stay pending for the next one."""
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self.recover()
        if fresh:  # new, or rebuilt: the journals brought the runs back, labels.jsonl their names
            recovery.restore_labels(self)
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
        row = self.row(node)
        with self._lock:
            self._pending[node.node_id] = row

    def flush(self) -> bool:
        """Write the pending rows; False (rows kept for the next flush, the reason in
        `write_error`) when the database refused them, as a full disk does."""
        with self._flush_lock:
            with self._lock:
                rows, self._pending = list(self._pending.values()), {}
            if not rows:
                return True
            try:
                self.insert(rows)
            except duckdb.Error as exc:
                self._rollback()
                with self._lock:  # a newer state of a node, written meanwhile, wins
                    self._pending = {r["node_id"]: r for r in rows} | self._pending
                if self.write_error is None:  # info: the run reports a full disk once, itself
                    _log.info("trace database write failed, rows kept pending: %s", exc)
                self.write_error = " ".join(str(exc).split())[:200]
                return False
            self.write_error = None
            return True

    def _rollback(self) -> None:
        try:
            self.cursor().execute("ROLLBACK")
        except duckdb.Error:  # no transaction was open: nothing to undo
            return

    def insert(self, rows: list[dict[str, Any]]) -> None:
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
        updates = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
        cur.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(RUN_COLUMNS))}) ON CONFLICT (run_id) DO UPDATE SET {updates}",
            run_values(row),
        )

    def row(self, node: Node) -> dict[str, Any]:
        """The node as a table row; its big texts stored once as blobs."""
        return node_row(node, self.blob_dir)

    def _flush_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            self.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join()
        self.flush()  # rows a full disk refused are in the journals, imported on the next open
        with contextlib.suppress(duckdb.Error):  # its checkpoint can fail the same way
            self._con.close()

    # ---- blobs ---------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        return blob_path(self.blob_dir, sha)

    def read_blob(self, sha: str) -> str:
        return self.blob_path(sha).read_text(encoding="utf-8", errors="surrogatepass")

    # ---- journals and recovery -----------------------------------------------------------

    def journal_path(self, run_id: str) -> Path:
        """The journal of a run; ValueError for an id that is not one (paths come from ids)."""
        if not valid_id(run_id):
            raise ValueError(f"not a run id: {str(run_id)[:80]!r}")
        return self.journal_dir / f"{run_id}.jsonl"

    def note(self, text: str) -> None:
        """Report something the store skipped or repaired, once."""
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)
            _log.warning("%s", text)

    def import_journals(self) -> list[str]:
        """Read new lines of every journal into the tables; returns the run ids touched. A bad
        line or journal is skipped and noted, never fatal."""
        return recovery.import_journals(self)

    def mark_journal_synced(self, run_id: str) -> None:
        """The tables hold everything journaled for the run: skip it on re-import. Not when a
        flush failed: the next import brings the rows the database refused."""
        path = self.journal_path(run_id)
        if path.exists() and self.flush():
            self.cursor().execute(
                "INSERT OR REPLACE INTO journals VALUES (?, ?)", [path.name, path.stat().st_size]
            )

    def add_run(self, run_id: str, nodes: list[Node]) -> None:
        """Store a run made elsewhere (an import): its journal first, so a rebuilt database
        keeps it, then the tables."""
        journal = JournalSink(self.journal_path(run_id), run_id)
        try:
            for node in nodes:
                journal.write(node)
        finally:
            journal.close()
        for node in nodes:
            self.write(node)
        self.mark_journal_synced(run_id)

    def recover(self) -> list[str]:
        """Import journals, then mark runs whose writer process is gone as interrupted."""
        return recovery.recover(self)

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
        blobs = node.meta.get("blobs")
        for name, sha in blobs.items() if isinstance(blobs, dict) else ():
            with contextlib.suppress(ValueError, OSError):  # a bad or lost blob: the preview
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
        if node is None or not sha:
            return None
        try:
            text = self.read_blob(sha)
        except (ValueError, OSError):  # a name that is no blob's, or a blob deleted since
            return None
        return json.loads(text) if node.meta.get("context_kind") == "json" else text

    def delete_run(self, run_id: str) -> None:
        path = self.journal_path(run_id)  # first: a bad id must not touch the tables either
        self.flush()
        cur = self.cursor()
        cur.execute("BEGIN")
        cur.execute("DELETE FROM nodes WHERE run_id = ?", [run_id])
        cur.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        cur.execute("DELETE FROM journals WHERE path = ?", [f"{run_id}.jsonl"])
        cur.execute("COMMIT")
        # the journal would bring the run back on the next import
        path.unlink(missing_ok=True)

    def rename_run(self, run_id: str, name: str | None) -> None:
        write_label(self.dir, run_id, name=name or None)  # a rebuilt database keeps it
        self.cursor().execute("UPDATE runs SET name = ? WHERE run_id = ?", [name or None, run_id])

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        clean = sorted({t.strip() for t in tags if t.strip()})
        write_label(self.dir, run_id, tags=clean)
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
    """Adapts a TraceStore to the tracer's sink protocol; closing a run flushes, not closes.

    With a run id, the run counts as live in this process until closed: journal imports leave
    it alone while this sink writes its rows."""

    def __init__(self, store: TraceStore, run_id: str | None = None) -> None:
        self.store, self.run_id = store, run_id
        if run_id is not None:
            live(run_id, True)

    def write(self, node: Node) -> None:
        self.store.write(node)

    def close(self) -> None:
        self.store.flush()
        if self.run_id is not None:
            live(self.run_id, False)
