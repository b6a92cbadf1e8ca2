"""Concurrency: two runs at once in one process (as two browser sessions start them through the
app's job runner) while a third session browses, all on the one cached store, against a fake server
with latency. No lock errors, no lost nodes, reads stay fast. (A CLI run while the app holds the
database is tests/test_cli.py's journal test.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from conftest import ROOT

from rlm_core import TraceStore
from rlm_core.config import RLMConfig
from ui.jobs import JobRunner
from ui.run.live import start_run

sys.path.insert(0, str(ROOT / "bench"))
from bench_faults import soak, soak_server

SOAK_S = 20.0
# Responsiveness bounds are generous on purpose: CI shares 2 cores with other work, and the
# measured figures live in the benchmark (bench/bench_faults.py), not in assertions.
READ_BOUND_S = 5.0


def test_two_writers_and_a_reader_for_a_while(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        with soak_server() as server:
            result = soak(store, server.base_url, SOAK_S)
    finally:
        store.close()
    assert result.run_errors == [] and result.read_errors == []
    assert result.runs_done >= 2 and result.reads >= 5
    assert result.journal_nodes > 100 and result.lost_nodes == 0
    assert result.p95_read_s < READ_BOUND_S, result.p95_read_s


def test_job_runner_runs_side_by_side_and_a_reader_never_blocks(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    runner = JobRunner()
    try:
        with soak_server() as server:
            config = RLMConfig(
                root_model="openai/root",
                sub_model="openai/sub",
                api_base=server.base_url,
                api_key="sk-conc",
                retries=0,
            )
            ids = [start_run(runner, store, "context. " * 3000, f"q{i}?", config) for i in range(2)]
            slowest = 0.0
            while runner.active():
                t = time.perf_counter()
                for run in store.list_runs():
                    store.nodes(run.run_id)
                slowest = max(slowest, time.perf_counter() - t)
                time.sleep(0.02)
        for run_id in ids:
            live = runner.get(run_id)
            assert live is not None and live.crash is None
            assert live.result is not None and live.result.status == "ok", live.result
            row = store.get_run(run_id)
            assert row is not None and row.status == "ok"
            assert len([n for n in store.nodes(run_id) if n.kind == "llm_query"]) == 24
        assert slowest < READ_BOUND_S
    finally:
        store.close()
