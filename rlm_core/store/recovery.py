"""Opening the DuckDB index whatever the last process left behind, and filling it from the
journals: they hold every node, `labels.jsonl` every rename and tag.

The database is a cache of the journals. A file another process holds is reported as busy; an
empty, unreadable or corrupt one is moved aside (kept for inspection) and rebuilt, and the
store says so once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from rlm_core.errors import DiskFull
from rlm_core.store.journal import process_alive, read_journal
from rlm_core.store.migrations import migrate
from rlm_core.store.private import open_private
from rlm_core.types import valid_id

if TYPE_CHECKING:
    from rlm_core.store.trace_store import TraceStore

LABELS = "labels.jsonl"


class StoreBusy(Exception):
    """Another process holds the database file (DuckDB allows one writer process)."""


def open_database(path: Path) -> tuple[duckdb.DuckDBPyConnection, bool, str | None]:
    """The database at `path`, migrated and read through once; a file that is empty or damaged
    is moved aside and a new one made. Returns the connection, whether it is new (the caller
    fills it from the journals and labels) and, when a damaged file was replaced, the one line
    that says so."""
    if path.exists() and path.stat().st_size == 0:
        # left by a process killed while creating it: nothing to keep, and nothing is wrong
        path.unlink()
    fresh = not path.exists()
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreBusy(f"The trace database {path} is in use by another process.") from exc
        if "not a valid DuckDB database" not in str(exc):
            raise  # permissions, a newer DuckDB's file, ...: nothing to rebuild, say so as is
        return _replaced(path, exc)
    try:
        migrate(con)
        verify(con)
    except duckdb.Error as exc:  # every DuckDB failure: a checksum, a bad block, a bad catalog
        con.close()
        if "No space left" in str(exc):
            raise DiskFull.at(path.parent) from exc
        return _replaced(path, exc)
    return con, fresh, None


def verify(con: duckdb.DuckDBPyConnection) -> None:
    """Read every block of every table once: DuckDB finds a damaged block only when it reads
    it, and the app must not discover that on some later page (a 50,000-node store: 0.1 s)."""
    tables = con.execute(
        "SELECT table_name, list(column_name) FROM duckdb_columns() "
        "WHERE schema_name = 'main' GROUP BY table_name"
    ).fetchall()
    for table, columns in tables:
        names = ", ".join(f'"{c}"' for c in columns)
        con.execute(f'SELECT count(hash({names})) FROM "{table}"').fetchall()


def _replaced(path: Path, exc: Exception) -> tuple[duckdb.DuckDBPyConnection, bool, str]:
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.replace(aside.with_name(aside.name + ".wal"))
    con = duckdb.connect(str(path))
    migrate(con)
    reason = " ".join(str(exc).split())[:160]
    return (
        con,
        True,
        (
            f"The trace database could not be read ({reason}); it was moved to {aside.name} and "
            "rebuilt from the journals."
        ),
    )


# ---- names and tags, journaled so a rebuild keeps them ----------------------------------------


def write_label(traces_dir: Path, run_id: str, **label: Any) -> None:
    """Append a run's new name or tags to `labels.jsonl` (the last line for a run wins)."""
    line = json.dumps({"run_id": run_id, **label}, ensure_ascii=False)
    with open_private(traces_dir / LABELS, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read_labels(traces_dir: Path) -> dict[str, dict[str, Any]]:
    """run id -> {"name": ..., "tags": [...]} as last set; bad lines are skipped."""
    path = traces_dir / LABELS
    labels: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return labels
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict) or not valid_id(data.get("run_id")):
            continue
        entry = labels.setdefault(data["run_id"], {})
        if "name" in data and (data["name"] is None or isinstance(data["name"], str)):
            entry["name"] = data["name"]
        tags = data.get("tags")
        if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
            entry["tags"] = tags
    return labels


# ---- journals into the tables -----------------------------------------------------------------

_LIVE: set[str] = set()
"""Runs this process is writing through a store right now."""
_LIVE_LOCK = threading.Lock()


def live(run_id: str, writing: bool) -> None:
    """Mark a run as being written by this process (its StoreSink), or no longer."""
    with _LIVE_LOCK:
        (_LIVE.add if writing else _LIVE.discard)(run_id)


def import_journals(store: TraceStore) -> list[str]:
    """Read new lines of every journal into the tables; returns the run ids touched."""
    cur = store.cursor()
    offsets = dict(cur.execute("SELECT path, byte_offset FROM journals").fetchall())
    touched = []
    for path in sorted(store.journal_dir.glob("*.jsonl")):
        with _LIVE_LOCK:
            # this process writes that run's rows itself; re-reading its journal could put an
            # older state of a node over a newer one
            writing = path.stem in _LIVE
        start = offsets.get(path.name, 0)
        if writing or path.stat().st_size <= start:
            continue
        try:
            run_id = _import_journal(store, path, start)
        except (duckdb.Error, pa.ArrowException, ValueError, TypeError) as exc:
            store.note(f"journal {path.name} could not be imported: {exc}")
            continue
        if run_id is not None:
            touched.append(run_id)
    return touched


def _import_journal(store: TraceStore, path: Path, start: int) -> str | None:
    skipped: list[str] = []
    header, nodes, end = read_journal(path, start, skipped)
    if header is None:
        return None  # the header line is still being written, or never was
    run_id = header.get("run_id")
    if not valid_id(run_id) or path.stem != run_id:
        store.note(f"journal {path.name}: its header names no run {path.stem}; not imported")
        return None
    ours = [n for n in nodes if n.run_id == run_id]
    if len(ours) < len(nodes):
        skipped.append(f"{len(nodes) - len(ours)} node(s) of another run")
    for why in skipped:
        store.note(f"journal {path.name}: skipped {why}")
    store.flush()
    if ours:
        latest = {n.node_id: store.row(n) for n in ours}
        store.insert(list(latest.values()))
    store.cursor().execute("INSERT OR REPLACE INTO journals VALUES (?, ?)", [path.name, end])
    return run_id if ours else None


def recover(store: TraceStore) -> list[str]:
    """Import journals, then mark runs whose writer process is gone as interrupted."""
    import_journals(store)
    cur = store.cursor()
    rows = cur.execute(
        "SELECT run_id, meta FROM nodes WHERE kind = 'run' AND parent_id IS NULL "
        "AND status = 'running'"
    ).fetchall()
    dead = []
    for run_id, meta_text in rows:
        meta = json.loads(meta_text or "{}")
        pid = meta.get("pid")
        if not isinstance(pid, int) or process_alive(pid, str(meta.get("host", ""))):
            continue  # its writer is alive, or unknown (then it is left alone)
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


def restore_labels(store: TraceStore) -> None:
    """Names and tags of a rebuilt database, from `labels.jsonl`."""
    cur = store.cursor()
    for run_id, label in read_labels(store.dir).items():
        if "name" in label:
            cur.execute("UPDATE runs SET name = ? WHERE run_id = ?", [label["name"], run_id])
        if "tags" in label:
            cur.execute("UPDATE runs SET tags = ? WHERE run_id = ?", [label["tags"], run_id])
