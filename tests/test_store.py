"""The trace store: migrations, batching, blobs, journals, recovery, run management."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT

from rlm_core.store.journal import JournalSink, read_journal
from rlm_core.store.migrations import MIGRATIONS, migrate
from rlm_core.store.trace_store import BIG_TEXT, StoreBusy, StoreSink, TraceStore
from rlm_core.trace import Tracer
from rlm_core.types import Node, new_id


def root_node(run_id: str, pid: int | None = None, question: str = "q?") -> Node:
    meta = {
        "pid": pid or os.getpid(),
        "host": socket.gethostname(),
        "question": question,
        "root_model": "demo/root",
        "sub_model": "demo/sub",
    }
    return Node(
        node_id=run_id,
        run_id=run_id,
        parent_id=None,
        kind="run",
        depth=0,
        seq=0,
        input=question,
        meta=meta,
    )


def child(run_id: str, seq: int, **fields: object) -> Node:
    return Node(
        node_id=new_id(),
        run_id=run_id,
        parent_id=run_id,
        kind="llm_query",
        depth=1,
        seq=seq,
        **fields,  # type: ignore[arg-type]
    )


def test_migrations_are_recorded_once_and_by_name() -> None:
    con = duckdb.connect(":memory:")
    assert migrate(con) == [m.__name__ for m in MIGRATIONS]
    assert migrate(con) == []
    names = [r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()]
    assert names == [m.__name__ for m in MIGRATIONS]


def test_nodes_round_trip_and_big_texts_go_to_blobs(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    run_id = new_id()
    tracer = Tracer([StoreSink(store)])
    tracer.start(root_node(run_id))
    big = "x" * (BIG_TEXT + 10)
    node = tracer.start(child(run_id, 1, input=big, context_spans=[[0, 10]]))
    tracer.end(node, output="small", tokens_in=3, cost_usd=None)
    store.flush()
    light = {n.node_id: n for n in store.nodes(run_id)}[node.node_id]
    assert len(light.input or "") < len(big) and "blobs" in light.meta
    full = store.node(node.node_id)
    assert full is not None
    assert full.input == big and full.output == "small" and full.context_spans == [[0, 10]]
    assert full.cost_usd is None and full.status == "ok"
    store.close()


def test_only_one_process_may_open_the_database(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    code = (
        "import sys; from rlm_core.store.trace_store import TraceStore, StoreBusy\n"
        f"try:\n    TraceStore({str(traces_dir)!r})\nexcept StoreBusy as e:\n    print('busy', e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.startswith("busy") and "in use by another process" in out.stdout
    store.close()
    assert StoreBusy.__doc__


def test_journal_alone_is_imported_and_a_dead_writer_marks_the_run_interrupted(
    traces_dir: Path,
) -> None:
    run_id = new_id()
    dead_pid = 2**22 + 12345  # above pid_max on this machine: no such process
    journal = traces_dir / "journal" / f"{run_id}.jsonl"
    sink = JournalSink(journal, run_id)
    tracer = Tracer([sink])
    tracer.start(root_node(run_id, pid=dead_pid))
    done = tracer.end(tracer.start(child(run_id, 1, input="p")), output="answer")
    tracer.start(child(run_id, 2, input="in flight"))
    tracer.close()
    with journal.open("a") as f:
        f.write('{"node_id": "torn')  # the writer died mid-line
    # as if another process had written it (the store skips journals of its own process)
    lines = journal.read_text().split("\n", 1)
    header = json.loads(lines[0]) | {"pid": dead_pid}
    journal.write_text(json.dumps(header) + "\n" + lines[1])
    store = TraceStore(traces_dir)
    run = store.get_run(run_id)
    assert run is not None and run.status == "interrupted"
    nodes = {n.node_id: n for n in store.nodes(run_id)}
    assert nodes[done.node_id].status == "ok" and nodes[done.node_id].output == "answer"
    assert sorted(n.status for n in nodes.values()) == ["interrupted", "interrupted", "ok"]
    store.close()
    # reopening does not import the same lines again or flip anything back
    store = TraceStore(traces_dir)
    assert len(store.nodes(run_id)) == 3
    store.close()


def test_read_journal_resumes_from_an_offset(tmp_path: Path) -> None:
    run_id = new_id()
    sink = JournalSink(tmp_path / "j.jsonl", run_id)
    sink.write(root_node(run_id))
    header, nodes, offset = read_journal(tmp_path / "j.jsonl")
    assert header is not None and header["run_id"] == run_id and len(nodes) == 1
    sink.write(child(run_id, 1))
    sink.close()
    _, more, _ = read_journal(tmp_path / "j.jsonl", offset)
    assert [n.kind for n in more] == ["llm_query"]


def test_search_rename_tags_and_delete(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    ids = []
    for question in ("Where is the needle?", "Count the labels"):
        run_id = new_id()
        tracer = Tracer([JournalSink(store.journal_path(run_id), run_id), StoreSink(store)])
        tracer.end(tracer.start(root_node(run_id, question=question)), output="done")
        tracer.close()
        ids.append(run_id)
    assert [r.run_id for r in store.list_runs()] == ids[::-1]
    assert [r.run_id for r in store.list_runs(search="needle")] == [ids[0]]
    store.rename_run(ids[1], "labels study")
    store.set_tags(ids[1], ["eval", " eval", "demo", ""])
    run = store.get_run(ids[1])
    assert run is not None and run.name == "labels study" and run.tags == ["demo", "eval"]
    assert [r.run_id for r in store.list_runs(search="study")] == [ids[1]]
    # a later write of the run node keeps what the user set by hand
    store.write(root_node(ids[1], question="Count the labels"))
    assert store.get_run(ids[1]).name == "labels study"  # type: ignore[union-attr]
    store.delete_run(ids[0])
    assert store.get_run(ids[0]) is None
    assert not store.journal_path(ids[0]).exists()
    store.close()
    store = TraceStore(traces_dir)
    assert [r.run_id for r in store.list_runs()] == [ids[1]]
    store.close()


@pytest.mark.parametrize("status", ["ok", "running"])
def test_list_runs_filters_by_status_and_model(traces_dir: Path, status: str) -> None:
    store = TraceStore(traces_dir)
    run_id = new_id()
    node = root_node(run_id)
    node.status = status  # type: ignore[assignment]
    store.write(node)
    assert [r.run_id for r in store.list_runs(status=status, model="demo/root")] == [run_id]
    assert store.list_runs(status="error") == []
    assert store.list_runs(model="openai/x") == []
    assert store.get_run(run_id).config == {}  # type: ignore[union-attr]
    store.close()


def test_a_store_left_open_at_exit_is_flushed_and_closed_quietly(traces_dir: Path) -> None:
    # a long flush interval: only the exit hook can get the row into the database
    script = (
        "import sys; from rlm_core.store.trace_store import TraceStore\n"
        "from rlm_core.types import Node\n"
        "store = TraceStore(sys.argv[1], flush_interval_s=3600)\n"
        "store.write(Node(node_id='R1', run_id='R1', parent_id=None, kind='run', depth=0, seq=0,"
        " status='ok', input='left open'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(traces_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr  # DuckDB's bindings complain about objects alive at exit
    con = duckdb.connect(str(traces_dir / "rlm.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT input FROM nodes WHERE node_id = 'R1'").fetchall() == [
            ("left open",)
        ]
    finally:
        con.close()
