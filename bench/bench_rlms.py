"""Side by side with the official `rlms` package (0.1.3) on the same fake server and workload.

`python bench/bench_rlms.py [--venv DIR]`: installs `rlms` into its own venv (never into the
project's), then times, for both implementations, 200 sequential `llm_query` calls from REPL
code (per-call time and the overhead over each one's own direct client call) and batched
fan-out of 16 and 64 sub-calls of 0.5 s latency. rlms finishes with `answer["ready"] = True`,
ours with FINAL(...); the fake server speaks to each in its protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RLMS_VERSION = "0.1.3"

SERVER = """
import sys, threading
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAIServer, FakeReply, by_model
code, finish, delay = {code!r}, {finish!r}, {delay!r}
sub = FakeReply("pong", delay_s=delay)
def root(body):
    turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
    return f"```repl\\n{{finish if turns else code}}\\n```"
with FakeOpenAIServer(by_model({{"root": root, "sub": lambda body: sub}})) as server:
    print(server.base_url, flush=True)
    threading.Event().wait()
"""
FINISH = {"ours": "FINAL(out)", "rlms": 'answer["content"] = out\nanswer["ready"] = True'}


@contextmanager
def served(code: str, flavour: str, delay: float = 0.0) -> Iterator[str]:
    """The tests' fake server in its own process (no GIL shared with the engine measured)."""
    script = SERVER.format(
        tests=str(ROOT / "tests"), code=code, finish=FINISH[flavour], delay=delay
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def loop_code(n: int) -> str:
    return (
        f"import time\nt = time.perf_counter()\nfor i in range({n}):\n"
        "    llm_query('ping ' + str(i))\nout = str(time.perf_counter() - t)"
    )


def batch_code(n: int) -> str:
    return (
        f"import time\nt = time.perf_counter()\nr = llm_query_batched(['q'] * {n})\n"
        "out = str(time.perf_counter() - t)"
    )


# ---- one implementation per process ---------------------------------------------------------


def run_ours(base_url: str, concurrency: int) -> str:
    sys.path.insert(0, str(ROOT))
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["RLM_TRACES_DIR"] = tempfile.mkdtemp(prefix="rlm-bench-rlms-")
    from rlm_core import RLM

    rlm = RLM(
        "openai/root", "openai/sub", base_url, api_key="k", retries=0, concurrency=concurrency
    )
    return str(rlm.run("ctx", "bench").answer)


def run_rlms(base_url: str, concurrency: int) -> str:
    from rlm import RLM  # the rlms package

    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": "root", "base_url": base_url, "api_key": "k"},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": "sub", "base_url": base_url, "api_key": "k"}],
        max_concurrent_subcalls=concurrency,
        max_iterations=5,
    )
    return str(rlm.completion("ctx", root_prompt="bench").response)


def direct_ours(base_url: str, n: int) -> float:
    sys.path.insert(0, str(ROOT))
    from rlm_core.models.litellm_client import LiteLLMClient

    client = LiteLLMClient("openai/sub", api_base=base_url, api_key="k", retries=0)
    client.complete([{"role": "user", "content": "warm"}])
    t = time.perf_counter()
    for i in range(n):
        client.complete([{"role": "user", "content": f"ping {i}"}])
    return (time.perf_counter() - t) / n


def direct_rlms(base_url: str, n: int) -> float:
    from rlm.clients import get_client

    client = get_client("openai", {"model_name": "sub", "base_url": base_url, "api_key": "k"})
    client.completion("warm")
    t = time.perf_counter()
    for i in range(n):
        client.completion(f"ping {i}")
    return (time.perf_counter() - t) / n


def measure(flavour: str) -> dict[str, Any]:
    run = run_ours if flavour == "ours" else run_rlms
    direct = direct_ours if flavour == "ours" else direct_rlms
    n, out = 200, {}
    with served(loop_code(n), flavour) as url:
        out["per_call_s"] = float(run(url, 16)) / n
        out["direct_s"] = direct(url, n)
    for fan in (16, 64):
        with served(batch_code(fan), flavour, 0.5) as url:
            out[f"fan_{fan}_s"] = float(run(url, fan))
    return out


# ---- the driver ----------------------------------------------------------------------------


def rlms_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"rlms=={RLMS_VERSION}"], check=True
        )
    return python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "rlms-venv")
    parser.add_argument("--measure", choices=["ours", "rlms"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    results = {}
    for flavour, python in (("ours", Path(sys.executable)), ("rlms", rlms_python(args.venv))):
        out = subprocess.run(
            [str(python), __file__, "--measure", flavour],
            capture_output=True,
            text=True,
            check=True,
        )
        results[flavour] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, theirs = results["ours"], results["rlms"]

    def ms(x: float) -> str:
        return f"{x * 1000:.2f} ms"

    rows = [
        (
            "sub-call from REPL code (200 sequential llm_query, no latency)",
            f"{ms(ours['per_call_s'])} ({ms(ours['per_call_s'] - ours['direct_s'])} over litellm)",
            f"{ms(theirs['per_call_s'])} ({ms(theirs['per_call_s'] - theirs['direct_s'])} over "
            "its openai client)",
        ),
        *[
            (
                f"llm_query_batched of {n} calls, 0.5 s latency each, concurrency {n}",
                f"{ours[f'fan_{n}_s']:.2f} s",
                f"{theirs[f'fan_{n}_s']:.2f} s",
            )
            for n in (16, 64)
        ],
    ]
    print(f"| workload | RLM Tracer | rlms {RLMS_VERSION} |\n|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")


if __name__ == "__main__":
    main()
