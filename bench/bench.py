"""Engine benchmark: overhead per sub-call, batched fan-out, 100 MB start, trace write rate.

Run `python bench/bench.py [--write-readme]`. Models are the fake OpenAI-compatible server from
the tests (fixed latency, loopback only), so the figures measure our code, not a provider.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from rlm_core import RLM  # noqa: E402
from rlm_core.models.litellm_client import LiteLLMClient  # noqa: E402
from rlm_core.store.journal import JournalSink  # noqa: E402
from rlm_core.store.trace_store import StoreSink, TraceStore  # noqa: E402
from rlm_core.trace import Tracer  # noqa: E402
from rlm_core.types import Node, new_id  # noqa: E402

Row = tuple[str, str, str]


@contextmanager
def served(code: str, sub_delay: float = 0.0) -> Iterator[str]:
    """A fake server in another process: root runs `code` then FINAL(out); sub says pong."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "server.py"), f.name, str(sub_delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
        os.unlink(f.name)


def run_with(code: str, context: Any, sub_delay: float = 0.0, **config: Any) -> str:
    with served(code, sub_delay) as base_url:
        rlm = RLM("openai/root", "openai/sub", base_url, api_key="k", retries=0, **config)
        return str(rlm.run(context, "bench").answer)


def sub_call_overhead(n: int = 200) -> Row:
    timing = "import time\nt = time.perf_counter()\n"
    loop = f"for i in range({n}):\n    llm_query('ping ' + str(i))\n"
    answer = run_with(timing + loop + "out = str(time.perf_counter() - t)", "ctx")
    per_engine = float(answer) / n
    with served("out = 1") as base_url:
        client = LiteLLMClient("openai/sub", api_base=base_url, api_key="k", retries=0)
        client.complete([{"role": "user", "content": "warm"}])
        samples = []
        for i in range(n):
            t = time.perf_counter()
            client.complete([{"role": "user", "content": f"ping {i}"}])
            samples.append(time.perf_counter() - t)
    direct = statistics.mean(samples)
    overhead = (per_engine - direct) * 1000
    return (
        "engine overhead per sub-call (sandbox pipe + trace, over a direct litellm call)",
        f"{overhead:.2f} ms ({per_engine * 1000:.2f} ms vs {direct * 1000:.2f} ms direct)",
        "< 5 ms",
    )


def fan_out(n: int, latency: float = 0.5) -> Row:
    code = (
        "import time\nt = time.perf_counter()\n"
        f"r = llm_query_batched(['q'] * {n})\nout = str(time.perf_counter() - t)"
    )
    answer = run_with(code, "ctx", latency, concurrency=max(16, n))
    wall = float(answer)
    target = {16: "< 1 s", 64: "< 1.5x one call"}.get(n, "")
    return (
        f"{n} batched sub-calls of {latency} s latency (concurrency {max(16, n)})",
        f"{wall:.2f} s ({wall / latency:.2f}x one call)",
        target,
    )


def big_context_start(mb: int) -> Row:
    text = ("lorem ipsum dolor sit amet " * (mb * 2**20 // 27 + 1))[: mb * 2**20]
    code = (
        "import re\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "out = peak"
    )
    with served(code) as base_url:
        rlm = RLM("openai/root", "openai/sub", base_url, api_key="k", retries=0)
        called_at = time.time()
        result = rlm.run(text, "bench")
    nodes = stored_nodes(result.run_id)
    first_call = min(n.started_at for n in nodes if n.kind == "lm")
    start_s = first_call - called_at
    peak_mb = int(str(result.answer)) / 1024
    return (
        f"{mb} MB context: from RLM.run() to the first root call; REPL worker peak memory",
        f"{start_s:.2f} s; {peak_mb:.0f} MB ({peak_mb / mb:.2f}x the context)",
        "< 3 s; < 3x" if mb == 100 else "",
    )


def stored_nodes(run_id: str) -> list[Node]:
    store = TraceStore()
    try:
        return store.nodes(run_id)
    finally:
        store.close()


def trace_writes(n: int = 10_000) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(tmp)
        run_id = new_id()
        tracer = Tracer([JournalSink(store.journal_path(run_id), run_id), StoreSink(store)])
        root = Node(
            node_id=run_id,
            run_id=run_id,
            parent_id=None,
            kind="run",
            depth=0,
            seq=0,
            meta={"pid": os.getpid(), "host": socket.gethostname()},
        )
        t = time.perf_counter()
        tracer.start(root)
        for i in range(n):
            node = Node(
                node_id=new_id(),
                run_id=run_id,
                parent_id=run_id,
                kind="llm_query",
                depth=1,
                seq=i,
                input="prompt " * 40,
            )
            tracer.start(node)
            tracer.end(node, output="answer " * 20, tokens_in=80, tokens_out=40)
        tracer.end(root)
        tracer.close()
        elapsed = time.perf_counter() - t
        stored = len(store.nodes(run_id))
        store.close()
    assert stored == n + 1
    return (
        f"{n:,} trace nodes written (start + end each; journal + DuckDB, flushed)",
        f"{elapsed:.2f} s ({n / elapsed:,.0f} nodes/s)",
        "< 1 s",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--quick", action="store_true", help="skip the 100 MB context")
    args = parser.parse_args()
    os.environ["RLM_TRACES_DIR"] = tempfile.mkdtemp(prefix="rlm-bench-")
    rows = [sub_call_overhead(), fan_out(16), fan_out(64), fan_out(256), trace_writes()]
    rows += [big_context_start(mb) for mb in ((1, 10) if args.quick else (1, 10, 100))]
    table = ["| measure | result | target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    text = (
        f"Measured with `python bench/bench.py` on {time.strftime('%Y-%m-%d')} ({machine}), "
        "models served by the tests' fake OpenAI-compatible server on 127.0.0.1.\n\n"
        + "\n".join(table)
    )
    print(text)
    if args.write_readme:
        readme = ROOT / "README.md"
        body = readme.read_text()
        block = re.compile(r"(<!-- bench.py:start -->\n)(.*?)(<!-- bench.py:end -->)", re.DOTALL)
        found = block.search(body)
        assert found, "README.md lost its <!-- bench.py:start/end --> markers"
        # rows measured by the other bench scripts share the table: keep them after ours
        ours = {a for a, _, _ in rows}
        kept = [
            line
            for line in found.group(2).splitlines()
            if line.startswith("| ")
            and line.split(" | ")[0][2:] not in ours
            and not line.startswith(("| measure |", "|---"))
        ]
        fresh = "\n".join([text, *kept]) + "\n"
        readme.write_text(body[: found.start(2)] + fresh + body[found.end(2) :])


if __name__ == "__main__":
    main()
