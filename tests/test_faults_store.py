"""The store survives bad data: bad journal lines, hostile run ids and blob names, a damaged or
empty database, a full disk, and sub-calls still in flight when FINAL ends the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeOpenAIServer, FakeReply, Scripted, by_model, repl, stored

from rlm_core import RLM, TraceStore
from rlm_core.exchange.jsonl import export_jsonl, import_file
from rlm_core.exchange.rlms import ImportFormatError
from rlm_core.store.journal import read_journal
from rlm_core.types import node_problem


def demo_run(question: str = "What is the secret code?") -> str:
    context = "filler text. " * 200 + "The secret code is 4242. " + "more filler. " * 200
    return RLM("demo/root", "demo/sub").run(context, question).run_id


def test_a_journal_line_of_the_wrong_type_is_skipped_and_reported(traces_dir: Path) -> None:
    run_id = demo_run()
    journal = traces_dir / "journal" / f"{run_id}.jsonl"
    lines = journal.read_text().splitlines()
    bad = json.loads(lines[2]) | {"depth": "deep", "node_id": "bad1"}
    deep = json.dumps(json.loads(lines[2]) | {"node_id": "bad2", "meta": {}})
    deep = deep.replace('"meta": {}', '"meta": {"x": ' + "[" * 1000 + "]" * 1000 + "}")
    other = json.loads(lines[2]) | {"run_id": "someone-else", "node_id": "bad3"}
    journal.write_text("\n".join([*lines[:3], json.dumps(bad), deep, json.dumps(other)]) + "\n")
    (traces_dir / "rlm.duckdb").unlink()  # rebuilt from the journal: every line is read again
    store = TraceStore()
    try:
        assert store.get_run(run_id) is not None
        ids = {n.node_id for n in store.nodes(run_id)}
        assert ids and not ids & {"bad1", "bad2", "bad3"}
        assert store.nodes("someone-else") == []
        notes = "\n".join(store.notes)
        assert "wrong type or value of depth" in notes and notes.count("skipped a line") == 2
        assert "node(s) of another run" in notes
    finally:
        store.close()
    assert node_problem(bad) is not None


def test_an_imported_run_id_or_blob_name_cannot_reach_a_file(
    traces_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.jsonl"  # traces/journal/../../victim.jsonl
    victim.write_text("precious")
    secret = tmp_path / "secret.txt"  # traces/blobs/../../secret.txt
    secret.write_text("the secret")
    store = TraceStore()
    try:
        export = export_jsonl(store, demo_run_in(store))
        header, *rest = export.splitlines()
        hostile = json.dumps(json.loads(header) | {"run_id": "../../victim"})
        with pytest.raises(ImportFormatError, match="not valid"):
            import_file(store, "\n".join([hostile, *rest]) + "\n", replace=True)
        with pytest.raises(ValueError, match="not a run id"):
            store.delete_run("../../victim")
        # a valid run whose root names a "blob" outside the blob folder
        nodes = [json.loads(line) for line in rest if '"node_id"' in line]
        new_id = "imported-run"
        for node in nodes:
            node["run_id"] = new_id
            node["meta"]["blobs"] = {"input": "../secret.txt"}
        nodes[0] |= {"node_id": new_id}
        nodes[0]["meta"]["context_sha"] = "../secret.txt"
        head = json.dumps(json.loads(header) | {"run_id": new_id})
        import_file(store, "\n".join([head, *map(json.dumps, nodes)]) + "\n")
        assert store.context(new_id) is None
        assert "the secret" not in str([store.node(n.node_id) for n in store.nodes(new_id)])
    finally:
        store.close()
    assert victim.read_text() == "precious" and secret.exists()


def demo_run_in(store: TraceStore) -> str:
    return (
        RLM("demo/root", "demo/sub", store=store).run("The code is 7.", "What is the code?").run_id
    )


@pytest.mark.parametrize("damage", ["header", "blocks", "empty"])
def test_a_damaged_database_is_rebuilt_from_the_journals_with_names_and_tags(
    traces_dir: Path, damage: str
) -> None:
    named, tagged = demo_run("first?"), demo_run("second?")
    store = TraceStore()
    store.rename_run(named, "my name")
    store.set_tags(tagged, ["keep", "me"])
    exported = export_jsonl(store, named)
    store.delete_run(named)
    imported = import_file(store, exported).run_id  # an import comes back from its journal
    store.rename_run(imported, "my name")
    store.close()
    db = traces_dir / "rlm.duckdb"
    data = bytearray(db.read_bytes())
    if damage == "header":
        data[:8192] = os.urandom(8192)
    elif damage == "blocks":
        cut = len(data) // 5
        data[cut:-cut] = os.urandom(len(data) - 2 * cut)
    else:
        data = bytearray()
    db.write_bytes(bytes(data))
    store = TraceStore()
    try:
        runs = {r.run_id: r for r in store.list_runs()}
        assert set(runs) == {imported, tagged}
        assert runs[imported].name == "my name" and runs[tagged].tags == ["keep", "me"]
        assert len(store.nodes(tagged)) > 5
        if damage == "empty":  # nothing was lost: no note, no file kept
            assert store.notes == [] and not list(traces_dir.glob("rlm.duckdb.damaged-*"))
        else:
            (note,) = store.notes
            assert "moved to rlm.duckdb.damaged-" in note and "rebuilt from the journals" in note
            assert list(traces_dir.glob("rlm.duckdb.damaged-*"))
    finally:
        store.close()


def test_sub_calls_in_flight_at_final_end_as_cancelled(traces_dir: Path) -> None:
    code = (
        "import threading, time\n"
        "threading.Thread(target=lambda: llm_query('slow one')).start()\n"
        "threading.Thread(target=lambda: rlm_query('slow child')).start()\n"
        "time.sleep(1.0)\nFINAL('done')"
    )
    root = Scripted([repl(code)])

    def slow(body: dict[str, Any]) -> FakeReply:
        return FakeReply(repl("FINAL('late')"), delay_s=2.5)

    with FakeOpenAIServer(by_model({"root": root, "sub": slow})) as server:
        rlm = RLM("openai/root", "openai/sub", server.base_url, api_key="k", retries=0)
        result = rlm.run("ctx", "q")
        assert result.status == "ok"
        _, nodes = stored(result.run_id)
        cut = {n.kind for n in nodes if n.status == "cancelled"}
        assert {"llm_query", "rlm_query", "run", "lm"} <= cut, [(n.kind, n.status) for n in nodes]
        assert all(n.status != "running" for n in nodes)
        # the late answers arrive after the run ended: nothing is written for them
        server.close()
        time.sleep(1.0)
    _, later = stored(result.run_id)
    assert {n.node_id: n.status for n in later} == {n.node_id: n.status for n in nodes}


FILLS_THE_DISK = """
import sys
from rlm_core import RLM
from rlm_core.cli import report
from rlm_core.models.scripted import ScriptedModel

def policy(messages):  # a root that prints 150 KB per turn (no litellm: the test stays fast)
    return "```repl\\nprint('x' * 150_000)\\n```"

rlm = RLM(traces_dir=sys.argv[1], models=lambda name, role: ScriptedModel(name, policy))
sys.exit(report(rlm.run("some context", "q"), as_json=False))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mount"),
    reason="needs root (and mount) to fill a small tmpfs: a full disk cannot be made otherwise",
)
def test_a_full_disk_gives_one_clear_message_and_loses_nothing_finished(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        traces = disk / "traces"
        TraceStore(traces).close()  # the database file, made while there is room
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 900_000))
        done = subprocess.run(
            [sys.executable, "-c", FILLS_THE_DISK, str(traces)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: The disk holding") and "is full" in line, line
        (disk / "filler").unlink()
        (journal,) = (traces / "journal").glob("*.jsonl")
        header, journaled, _ = read_journal(journal)
        assert header is not None and len(journaled) >= 3
        store = TraceStore(traces)
        try:
            nodes = {n.node_id: n for n in store.nodes(header["run_id"])}
            finished = {n.node_id: n for n in journaled if n.status != "running"}
            assert finished and set(finished) <= set(nodes)
            assert all(nodes[i].status == n.status for i, n in finished.items())
            assert store.get_run(header["run_id"]).status == "interrupted"  # type: ignore[union-attr]
        finally:
            store.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
