"""Evaluation throughput: rows per minute in this process (threads) and on a local Ray of 1, 2
and 4 workers, on the demo models (compute-bound) and on a fake server that takes 0.5 s per
call (waiting-bound).

Run `python bench/bench_ray.py [--rows N] [--write-readme]`. Each Ray size gets a fresh local
Ray and one warm-up row per worker first (a worker's first row pays for its start and imports);
its start-up is given apart.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["HF_HUB_OFFLINE"] = "1"

import ray  # noqa: E402

from rlm_core.config import RLMConfig  # noqa: E402
from rlm_core.evaluate.evaluator import EvalPlan, Evaluator  # noqa: E402
from rlm_core.evaluate.on_ray import RayEvaluator, start_ray  # noqa: E402
from rlm_core.store.trace_store import TraceStore  # noqa: E402

LATENCY_S = 0.5
# the fake server in a process of its own: in this one it would share the GIL with the engine
SERVER = """
import sys, threading
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAIServer, FakeReply

def reply(body):
    done = len(body["messages"]) > 2
    code = "FINAL(out)" if done else "out = llm_query('ping')"
    return FakeReply("```repl\\n" + code + "\\n```", delay_s={latency})

with FakeOpenAIServer(reply) as server:
    print(server.base_url, flush=True)
    threading.Event().wait()
"""


def plan(rows: int, api_base: str | None) -> EvalPlan:
    model = "openai/root" if api_base else "demo/root"
    return EvalPlan(
        tasks=("needle",),
        sizes=(10_000,),
        models=((model, "openai/root" if api_base else "demo/sub"),),
        config=RLMConfig(api_base=api_base, api_key="sk-bench" if api_base else None),
        methods=("rlm",),
        seeds=tuple(range(1, rows + 1)),
    )


def rows_per_minute(workers: int | None, rows: int, api_base: str | None) -> tuple[float, float]:
    """(rows per minute, Ray start-up s) for threads (workers None) or a local Ray."""
    with tempfile.TemporaryDirectory() as folder:
        store = TraceStore(Path(folder))
        try:
            started = time.monotonic()
            if workers is None:
                make = lambda p: Evaluator(p, store)  # noqa: E731
                startup = 0.0
            else:
                start_ray(None, workers)
                startup = time.monotonic() - started
                RayEvaluator(plan(workers, api_base), store).run()  # warm-up
                make = lambda p: RayEvaluator(p, store)  # noqa: E731
            started = time.monotonic()
            done = make(plan(rows, api_base)).run()
            took = time.monotonic() - started
            assert len(done) == rows and all(r.status == "ok" for r in done), done
        finally:
            store.close()
            if workers is not None:
                ray.shutdown()
    return rows / took * 60, startup


def measure(rows: int) -> list[str]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"), latency=LATENCY_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        lines = ["| executor | demo models | fake server, 0.5 s per call | Ray start-up |"]
        lines.append("|---|---|---|---|")
        for workers in (None, 1, 2, 4):
            demo, startup = rows_per_minute(workers, rows, None)
            served, _ = rows_per_minute(workers, rows, base)
            name = "threads (this process)" if workers is None else f"local Ray, {workers} worker"
            name += "s" if workers and workers > 1 else ""
            start = "-" if workers is None else f"{startup:.1f} s"
            lines.append(f"| {name} | {demo:.0f} rows/min | {served:.0f} rows/min | {start} |")
            print(lines[-1], flush=True)
    finally:
        server.terminate()
        server.wait()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    lines = measure(args.rows)
    table = "\n".join(
        [
            f"Measured with `python bench/bench_ray.py --rows {args.rows}` on "
            f"{time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, Python "
            f"{sys.version.split()[0]}): RLM rows of the needle task at 10,000 characters, "
            "after one warm-up row per worker.",
            "",
            *lines,
        ]
    )
    print(table)
    if args.write_readme:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        pattern = r"(<!-- bench_ray.py:start -->\n).*?(\n<!-- bench_ray.py:end -->)"
        readme.write_text(re.sub(pattern, rf"\g<1>{table}\g<2>", text, flags=re.S), "utf-8")


if __name__ == "__main__":
    main()
