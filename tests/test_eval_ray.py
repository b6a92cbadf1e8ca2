"""Evaluation rows on a local Ray: the same rows and traces as the in-process executor, every
row's trace in the one store, Stop, and a worker that dies failing its row only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from conftest import ROOT, poll
from fake_openai import FakeOpenAIServer, FakeReply
from fake_otlp import FakeCollector
from streamlit.testing.v1 import AppTest

from rlm_core import TraceStore
from rlm_core.cli import main
from rlm_core.cli_eval import seeds_of
from rlm_core.config import RLMConfig
from rlm_core.evaluate.evaluator import EvalPlan, EvalRow, Evaluator
from rlm_core.evaluate.on_ray import RayEvaluator, start_ray
from rlm_core.otel_map import span_id
from rlm_core.store.journal import read_journal

KEY = "sk-ray-test-key-0123456789"
SLOW_S = 1.5


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One small local Ray for the module (starting one takes seconds)."""
    start_ray(None, workers=2)
    yield
    ray.shutdown()


def _tree(store: TraceStore, run_id: str) -> list[tuple[Any, ...]]:
    """What a run's trace says, without ids and times (they differ between two runs)."""
    nodes = store.nodes(run_id)
    return sorted(
        (n.kind, n.depth, n.seq, n.status, n.model, n.tokens_in, n.tokens_out, n.cost_usd)
        for n in nodes
    )


def _outcome(row: EvalRow) -> tuple[Any, ...]:
    return (
        row.task,
        row.size,
        row.question,
        row.method,
        row.seed,
        row.status,
        row.answer,
        row.score,
        row.tokens_in,
        row.tokens_out,
        row.sub_calls,
        row.child_runs,
    )


def test_ray_gives_the_rows_and_traces_of_threads(tmp_path: Path) -> None:
    plan = EvalPlan(
        tasks=("needle", "tickets"),
        sizes=(10_000,),
        models=(("demo/root", "demo/sub"),),
        config=RLMConfig(api_key=KEY),
        methods=("rlm", "base", "rag"),
        seeds=(1, 2),
    )
    results = {}
    for name in ("threads", "ray"):
        store = TraceStore(tmp_path / name)
        progress: list[str] = []
        options: dict[str, Any] = {
            "on_progress": lambda d, t, label, seen=progress: seen.append(label)
        }
        try:
            evaluator = (
                RayEvaluator(plan, store, **options)
                if name == "ray"
                else Evaluator(plan, store, **options)
            )
            rows = evaluator.run()
            trees = [_tree(store, r.run_id) for r in rows if r.run_id]
            stored_runs = {r.run_id for r in store.list_runs(limit=1000)}
            journals = {p.stem for p in store.journal_dir.glob("*.jsonl")}
        finally:
            store.close()
        assert len(rows) == plan.total and all(r.status == "ok" for r in rows)
        # every row's run is in the store, with its journal, once
        ran = [r.run_id for r in rows if r.run_id]
        assert len(set(ran)) == len(ran) and set(ran) == stored_runs <= journals
        results[name] = ([_outcome(r) for r in rows], trees, progress)
    assert results["ray"][0] == results["threads"][0]
    assert results["ray"][1] == results["threads"][1]
    assert any("running" in p for p in results["ray"][2])
    for path in (tmp_path / "ray").rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".duckdb", ".wal"):
            assert KEY.encode() not in path.read_bytes(), path


def _slow_plan(server: FakeOpenAIServer, seeds: int) -> EvalPlan:
    """Rows whose root model takes SLOW_S to answer, then ends the run."""
    return EvalPlan(
        tasks=("needle",),
        sizes=(10_000,),
        models=(("openai/root", "openai/root"),),
        config=RLMConfig(api_base=server.base_url, api_key=KEY, retries=0),
        methods=("rlm",),
        seeds=tuple(range(1, seeds + 1)),
    )


def _slow_server() -> FakeOpenAIServer:
    reply = FakeReply("```repl\nFINAL('not sure')\n```", delay_s=SLOW_S)
    return FakeOpenAIServer(lambda body: reply)


def _in_thread(evaluator: RayEvaluator) -> tuple[threading.Thread, list[list[EvalRow]]]:
    out: list[list[EvalRow]] = []
    thread = threading.Thread(target=lambda: out.append(evaluator.run()), daemon=True)
    thread.start()
    return thread, out


def _wait_running(evaluator: RayEvaluator, seconds: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while not evaluator.running:
        assert time.monotonic() < deadline, "no row started"
        time.sleep(0.1)
    return dict(evaluator.running)


def test_forty_rows_stop_and_every_row_ended_keeps_its_trace(tmp_path: Path) -> None:
    with _slow_server() as server:
        plan = _slow_plan(server, 40)
        assert plan.total == 40
        store = TraceStore(tmp_path / "traces")
        try:
            evaluator = RayEvaluator(plan, store)
            thread, out = _in_thread(evaluator)
            deadline = time.monotonic() + 120
            while evaluator.count < 2:  # a few rows done
                assert time.monotonic() < deadline, "no row ended"
                time.sleep(0.1)
            evaluator.cancel.set()
            stopped_at = time.monotonic()
            thread.join(60)
            assert not thread.is_alive()
            assert time.monotonic() - stopped_at < 15  # running rows ended as cancelled
            (rows,) = out
            assert 0 < len(rows) < 40
            statuses = {r.status for r in rows}
            # done, or cut short by Stop (the rows running then, unless they were just ending)
            assert "ok" in statuses and statuses <= {"ok", "interrupted"}
            for row in rows:
                run = store.get_run(row.run_id or "")
                assert run is not None and run.status == row.status
                _, journaled, _ = read_journal(store.journal_path(run.run_id))
                assert {n.node_id for n in journaled} == {
                    n.node_id for n in store.nodes(run.run_id)
                }
            saved = (
                store.cursor()
                .execute("SELECT count(*), count(DISTINCT run_id) FROM eval_results")
                .fetchone()
            )
            assert saved == (len(rows), len(rows))
        finally:
            store.close()


def test_a_dead_worker_fails_its_row_and_no_other(tmp_path: Path) -> None:
    with _slow_server() as server:
        plan = _slow_plan(server, 4)
        store = TraceStore(tmp_path / "traces")
        try:
            evaluator = RayEvaluator(plan, store)
            thread, out = _in_thread(evaluator)
            row_id, pid = next(iter(_wait_running(evaluator).items()))
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            thread.join(90)
            assert not thread.is_alive()
            (rows,) = out
            assert len(rows) == 4
            (dead,) = [r for r in rows if r.row_id == row_id]
            assert dead.status == "error" and "died" in (dead.error or "")
            assert all(r.status == "ok" for r in rows if r is not dead)
            assert all(store.get_run(r.run_id or "") for r in rows if r is not dead)
        finally:
            store.close()


def test_evaluate_page_runs_rows_on_ray_and_shows_the_spread_over_seeds(
    fresh_app: None,
) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "6_Evaluate.py"), default_timeout=60).run()
    at.multiselect(key="ev_sizes").set_value([10_000]).run()
    at.multiselect(key="ev_methods").set_value(["rlm"]).run()
    at.number_input(key="ev_seeds").set_value(2).run()
    at.radio(key="ev_executor").set_value("ray").run()
    at.button(key="ev_start").click().run()
    assert not at.exception and not at.error
    at = poll(at, lambda a: any(c.value == "Finished." for c in a.caption), "finished", 120)
    table = at.dataframe[0].value
    assert list(table["RLM score"]) == ["1.00 (1.00–1.00)"]
    store = TraceStore()
    try:
        rows = store.cursor().execute("SELECT run_id FROM eval_results").fetchall()
        assert len(rows) == 2 and all(store.get_run(r[0]) for r in rows)
    finally:
        store.close()


def test_cli_eval_on_ray_sends_every_node_to_the_collector(tmp_path: Path) -> None:
    with FakeCollector() as collector:
        out = subprocess.run(
            [
                *(sys.executable, "-m", "rlm_core", "eval", "--executor", "ray"),
                *("--ray-workers", "1", "--size", "10000", "--method", "rlm", "--seeds", "2"),
                *("--traces-dir", str(tmp_path / "traces"), "--json"),
                *("--otlp-endpoint", collector.endpoint),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        assert [r["seed"] for r in rows] == [1, 2] and all(r["status"] == "ok" for r in rows)
        store = TraceStore(tmp_path / "traces")
        try:
            nodes = [n for r in rows for n in store.nodes(r["run_id"])]
        finally:
            store.close()
        assert sorted(s.span_id for s in collector.spans) == sorted(
            span_id(n.node_id) for n in nodes
        )
    assert "running" in out.stderr
    assert f"OTLP: {len(nodes)} spans sent from the Ray workers, 0 lost" in out.stderr


def test_seeds_flag_is_a_count_or_the_seeds_themselves() -> None:
    assert seeds_of(None, 7) == (7,)
    assert seeds_of([3], None) == (1, 2, 3)
    assert seeds_of([7, 11], None) == (7, 11)
    with pytest.raises(ValueError):
        seeds_of([0], None)


def test_a_cluster_address_nobody_answers_at_is_a_clear_message_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a loopback port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["eval", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]
    assert main([*args, "--traces-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert f"No Ray cluster answers at 127.0.0.1:{port}" in err and "Traceback" not in err
