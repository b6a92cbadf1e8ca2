"""App benchmarks: Explorer open of a 10,000-node run, graph payload build, app memory with
1,000 stored runs. `python bench/bench_app.py [--quick]` prints a table for the README.

Synthetic runs are written straight to the store (shape of a real run: iterations of lm + code,
each code cell with a batch of sub-calls), so the figures measure reading and drawing only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from synthetic import synthetic_run  # noqa: E402

from rlm_core.analysis.graph import vis_payload  # noqa: E402
from rlm_core.store.trace_store import TraceStore  # noqa: E402

Row = tuple[str, str, str]


def explorer_open(n_nodes: int) -> Row:
    """AppTest script-run time of pages/1_Explorer.py?run=<id> (imports warmed up first)."""
    code = f"""
import os, sys, time, json
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
from rlm_core.store.trace_store import TraceStore
sys.path.insert(0, {str(ROOT / "tests")!r})
from synthetic import synthetic_run
store = TraceStore()
small, big = synthetic_run(store, 200), synthetic_run(store, {n_nodes})
store.close()
page = {str(ROOT / "pages" / "1_Explorer.py")!r}
def open_run(run_id):
    at = AppTest.from_file(page, default_timeout=120)
    at.query_params["run"] = run_id
    t = time.perf_counter()
    at.run()
    assert not at.exception, at.exception
    return time.perf_counter() - t
open_run(small)
first, again = open_run(big), open_run(big)
print(json.dumps([first, again]))
"""
    with tempfile.TemporaryDirectory(prefix="rlm-bench-app-") as tmp:
        env = {**os.environ, "RLM_TRACES_DIR": tmp}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    first, again = json.loads(out.stdout.strip().splitlines()[-1])
    return (
        f"Explorer open of a {n_nodes:,}-node run (AppTest script run of pages/1_Explorer.py?run=)",
        f"{first:.2f} s first open; {again:.2f} s next open",
        "< 2 s" if n_nodes >= 10_000 else "",
    )


def payload(n_nodes: int) -> Row:
    with tempfile.TemporaryDirectory(prefix="rlm-bench-app-") as tmp:
        store = TraceStore(tmp)
        try:
            nodes = store.nodes(synthetic_run(store, n_nodes))
        finally:
            store.close()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        data = vis_payload(nodes)
        times.append(time.perf_counter() - t)
    size = len(json.dumps(data))
    return (
        f"graph payload build (graph.vis_payload), {len(nodes):,} nodes",
        f"{min(times) * 1000:.0f} ms ({size / 1e6:.1f} MB of JSON)",
        "",
    )


def app_memory(n_runs: int = 1000) -> Row:
    """RSS of a process that holds the cached store and rendered the Runs page over n runs."""
    code = f"""
import sys, json, resource
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
before = rss()
at = AppTest.from_file({str(ROOT / "pages" / "2_Runs.py")!r}, default_timeout=120).run()
assert not at.exception, at.exception
print(json.dumps([before, rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  len(at.dataframe[0].value)]))
"""
    with tempfile.TemporaryDirectory(prefix="rlm-bench-app-") as tmp:
        store = TraceStore(tmp)
        try:
            for _ in range(n_runs):
                synthetic_run(store, 12, per_cell=4)
        finally:
            store.close()
        env = {**os.environ, "RLM_TRACES_DIR": tmp}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    before, after, peak, listed = json.loads(out.stdout.strip().splitlines()[-1])
    return (
        f"app memory: process holding the cached store after the Runs page listed {n_runs:,} runs",
        f"{after:.0f} MB resident ({after - before:.0f} MB for Streamlit, the store and the page; "
        f"peak {peak:.0f} MB; {listed} rows shown)",
        "",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000-node Explorer only")
    args = parser.parse_args()
    os.environ["RLM_TRACES_DIR"] = tempfile.mkdtemp(prefix="rlm-bench-")
    rows = [payload(2_000), payload(10_000)]
    rows += [explorer_open(n) for n in ((2_000,) if args.quick else (2_000, 10_000))]
    rows.append(app_memory(200 if args.quick else 1000))
    print("| measure | result | target |\n|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")


if __name__ == "__main__":
    main()
