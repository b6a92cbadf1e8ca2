"""Fault benchmarks: SIGKILL crash consistency (many trials) and a concurrency soak.

`python bench/bench_faults.py [--quick] [--trials N] [--soak-s S]`. The tests import
`crash_trial` and `soak` and run them briefly; this script runs them long and prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_core.store.journal import read_journal  # noqa: E402
from rlm_core.store.trace_store import TraceStore  # noqa: E402
from rlm_core.types import TERMINAL_STATUSES, Node  # noqa: E402

CHILD = ROOT / "bench" / "crash_child.py"
COMPARED = ("status", "output", "error", "code", "stdout", "input", "tokens_in", "tokens_out")


@dataclass
class Trial:
    kill_after_s: float
    completed: bool = False
    """The run had ended before the kill landed (its journal says how; the store must agree)."""
    journal_status: str | None = None
    opened: bool = False
    run_status: str | None = None
    finished: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)
    reopen_s: float = 0.0

    @property
    def consistent(self) -> bool:
        status_ok = self.run_status == (self.journal_status if self.completed else "interrupted")
        return (
            self.opened
            and status_ok
            and not self.missing
            and not self.mismatched
            and not self.left_running
        )


def crash_trial(traces: Path, kill_after_s: float, sub_delay_s: float = 0.01) -> Trial:
    """Start an engine process, SIGKILL it `kill_after_s` after its run began, then reopen the
    store as the app would and compare it with the journal (the durable record)."""
    trial = Trial(kill_after_s)
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(traces), str(sub_delay_s)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal_dir = traces / "journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal_dir.is_dir() and any(journal_dir.glob("*.jsonl")):
            break
        time.sleep(0.005)
    time.sleep(kill_after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return check_store(traces, trial)


def check_store(traces: Path, trial: Trial) -> Trial:
    """Open the store as the app would (recovery runs) and compare it with the one journal."""
    [path] = list((traces / "journal").glob("*.jsonl"))
    header, events, _ = read_journal(path)
    assert header is not None
    latest: dict[str, Node] = {}
    for node in events:
        latest[node.node_id] = node
    root = latest.get(str(header["run_id"]))
    trial.journal_status = root.status if root else None
    trial.completed = trial.journal_status in TERMINAL_STATUSES
    started = time.perf_counter()
    store = TraceStore(traces)  # must open (and recover) whatever the kill left
    trial.reopen_s = time.perf_counter() - started
    trial.opened = True
    try:
        run = store.get_run(str(header["run_id"]))
        trial.run_status = run.status if run else None
        stored = {n.node_id: n for n in store.nodes(str(header["run_id"]))}
        trial.left_running = [i for i, n in stored.items() if n.status == "running"]
        for node_id, node in latest.items():
            if node.status not in TERMINAL_STATUSES:
                continue
            trial.finished += 1
            if node_id not in stored:
                trial.missing.append(node_id)
                continue
            full = store.node(node_id)
            if full is None or any(getattr(full, f) != getattr(node, f) for f in COMPARED):
                trial.mismatched.append(node_id)
    finally:
        store.close()
    return trial


def crash_trials(n: int, seed: int = 7, max_kill_s: float = 1.2) -> list[Trial]:
    rng = random.Random(seed)
    trials = []
    with tempfile.TemporaryDirectory(prefix="rlm-crash-") as tmp:
        for i in range(n):
            trials.append(crash_trial(Path(tmp) / f"t{i}", rng.uniform(0.0, max_kill_s)))
    return trials


# ---- concurrency soak ------------------------------------------------------------------------


@dataclass
class Soak:
    runs_done: int = 0
    run_errors: list[str] = field(default_factory=list)
    reads: int = 0
    read_errors: list[str] = field(default_factory=list)
    read_latencies: list[float] = field(default_factory=list)
    lost_nodes: int = 0
    journal_nodes: int = 0

    @property
    def p95_read_s(self) -> float:
        if not self.read_latencies:
            return 0.0
        return statistics.quantiles(self.read_latencies, n=20)[-1]


def soak(
    store: TraceStore, base_url: str, seconds: float, writers: int = 2, readers: int = 1
) -> Soak:
    """`writers` threads start RLM runs back to back through a RunManager-like path (one shared
    store) while `readers` browse: list runs, open the newest run's nodes and one node."""
    from rlm_core import RLM

    out = Soak()
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    run_ids: list[str] = []

    def write() -> None:
        while time.monotonic() < stop:
            try:
                rlm = RLM(
                    "openai/root",
                    "openai/sub",
                    base_url,
                    api_key="sk-soak",
                    store=store,
                    retries=0,
                    cell_timeout_s=30,
                )
                result = rlm.run("soak context. " * 2000, "soak?")
                with lock:
                    run_ids.append(result.run_id)
                    out.runs_done += 1
                    if result.status != "ok":
                        out.run_errors.append(f"{result.status}: {result.error}")
            except Exception as exc:
                with lock:
                    out.run_errors.append(f"{type(exc).__name__}: {exc}")

    def read() -> None:
        while time.monotonic() < stop:
            try:
                t = time.perf_counter()
                runs = store.list_runs(limit=50)
                if runs:
                    nodes = store.nodes(runs[0].run_id)
                    if nodes:
                        store.node(nodes[-1].node_id)
                with lock:
                    out.read_latencies.append(time.perf_counter() - t)
                    out.reads += 1
            except Exception as exc:
                with lock:
                    out.read_errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    threads += [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    for run_id in run_ids:
        _, events, _ = read_journal(store.journal_path(run_id))
        ids = {n.node_id for n in events}
        in_db = {n.node_id for n in store.nodes(run_id)}
        out.journal_nodes += len(ids)
        out.lost_nodes += len(ids - in_db)
    return out


def soak_server() -> Any:
    """The tests' fake server: root fans out 24 sub-calls (3 batches) with 20-60 ms latency."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai import FakeOpenAIServer, FakeReply, by_model

    rng = random.Random(3)
    code = (
        "parts = [context[i:i + 500] for i in range(0, 12000, 500)]\n"
        "out = []\nfor k in range(3):\n"
        "    out += llm_query_batched([f'{k}: ' + p for p in parts[k * 8:(k + 1) * 8]])\n"
        "answer = str(len(out))"
    )

    def root(body: dict[str, Any]) -> Any:
        if len(body["messages"]) > 2:
            return "```repl\nFINAL_VAR('answer')\n```"
        return FakeReply(f"```repl\n{code}\n```", delay_s=0.03)

    def sub(body: dict[str, Any]) -> Any:
        return FakeReply(
            "seen: " + body["messages"][-1]["content"][:30], delay_s=rng.uniform(0.02, 0.06)
        )

    return FakeOpenAIServer(by_model({"root": root, "sub": sub}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="8 kills, 30 s soak")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--soak-s", type=float, default=600.0)
    args = parser.parse_args()
    trials_n, soak_s = (8, 30.0) if args.quick else (args.trials, args.soak_s)
    rows = []
    t = time.perf_counter()
    trials = crash_trials(trials_n)
    good = sum(tr.consistent for tr in trials)
    finished = sum(tr.finished for tr in trials)
    reopen = max(tr.reopen_s for tr in trials)
    rows.append(
        (
            f"SIGKILL of the engine at a random point, {trials_n} trials",
            f"{good}/{trials_n} consistent ({finished:,} finished nodes checked, "
            f"{sum(tr.completed for tr in trials)} had already finished); "
            f"reopen + recovery at most {reopen:.2f} s; {time.perf_counter() - t:.0f} s total",
            "all consistent",
        )
    )
    for tr in trials:
        if not tr.consistent:
            print("INCONSISTENT", tr, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rlm-soak-") as tmp, soak_server() as server:
        store = TraceStore(tmp)
        try:
            result = soak(store, server.base_url, soak_s)
        finally:
            store.close()
    rows.append(
        (
            f"soak: 2 threads running RLMs back to back + 1 browsing, {soak_s:.0f} s",
            f"{result.runs_done} runs, {result.journal_nodes:,} nodes, {result.lost_nodes} lost, "
            f"{len(result.run_errors) + len(result.read_errors)} errors; {result.reads} reads, "
            f"p95 {result.p95_read_s * 1000:.0f} ms",
            "0 lost, 0 errors",
        )
    )
    for err in (result.run_errors + result.read_errors)[:5]:
        print("ERROR", err, file=sys.stderr)
    print("| measure | result | target |\n|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")


if __name__ == "__main__":
    main()
