"""A small model served the way people serve it, answering held-out needle questions.

`python bench/bench_served.py --gguf FILE [--sizes N ...] [--seeds N ...] [--local]
[--temperature X] [--model-seed N] [--prompt auto|full|small] [--max-iterations N] [--show]
[--keep DIR]`
starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (the flags LOCAL_MODEL.md
recommends; or uses `--api-base URL` of one already running), then asks each question of
bench/heldout.py through `RLM(root_model="openai/<alias>", api_base=...)`, the served model as
root and sub model, as a user of the README would. `--local` runs the same file in-process as
`local/FILE` beside it. One line per question (verdict, seconds, turns, sub-calls, root prompt
tokens, how many of them the server could reuse, machine load) and a summary per path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RLM_LOCAL_N_CTX", "8192")

from heldout import question

from rlm_core import RLM
from rlm_core.analysis.timing import where_time_went
from rlm_core.config import RLMConfig
from rlm_core.evaluate.scoring import score
from rlm_core.store.trace_store import TraceStore

SERVER_FLAGS = (
    *("--n_ctx", "8192", "--logits_all", "False"),
    *("--cache", "True", "--cache_type", "ram", "--cache_size", "1073741824"),
)


@contextlib.contextmanager
def llama_server(gguf: Path, alias: str, threads: int) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port; its API base while it runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--model_alias", alias]
    command += ["--n_threads", str(threads), *SERVER_FLAGS]
    base = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not _started(base, server):
                log.seek(0)
                raise SystemExit(f"the server did not start:\n{log.read().decode()[-2000:]}")
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def _started(base: str, server: subprocess.Popen[bytes]) -> bool:
    """Wait until the server answers (loading 1 GB takes seconds); False if it died."""
    deadline = time.time() + 300
    while server.poll() is None and time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=2).close()
            return True
        except OSError:
            time.sleep(1)
    return False


def one(model: str, api_base: str | None, size: int, seed: int, args: argparse.Namespace) -> dict:
    q = question(size, seed)
    config = RLMConfig(
        root_model=model,
        sub_model=model,
        api_base=api_base,
        prompt=args.prompt,
        temperature=args.temperature,
        seed=args.model_seed,
        max_iterations=args.max_iterations,
        request_timeout_s=300,
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = RLM(config=config, traces_dir=args.traces).run(q.context, q.question)
    took = time.perf_counter() - started
    store = TraceStore(args.traces)
    nodes = store.nodes(result.run_id)
    full = [store.node(n.node_id) for n in nodes if n.kind in ("lm", "run")]
    store.close()
    lms = [n for n in full if n and n.kind == "lm" and n.depth == 0]
    row = {
        "path": "local" if model.startswith("local/") else "served",
        "size": size,
        "seed": seed,
        "right": score("exact", result.answer, q.answer) == 1,
        "s": round(took, 1),
        "turns": result.iterations,
        "sub_calls": sum(1 for n in nodes if n.kind in ("llm_query", "rlm_query")),
        "prompt_tokens": sum(n.tokens_in or 0 for n in lms),
        "new_tokens": where_time_went(lms)["of which new"],
        "status": result.status,
        "answer": (result.answer or "")[:40],
        "expected": q.answer,
        "prompt": full[0].meta.get("prompt") if full and full[0] else None,
        "load": round((load + os.getloadavg()[0]) / 2, 2),
    }
    print(json.dumps(row), flush=True)
    if args.show:
        for n in lms:
            print("   | " + (n.output or "").replace("\n", "\n   | "))
    return row


def summary(rows: list[dict]) -> None:
    for path in dict.fromkeys(r["path"] for r in rows):
        mine = [r for r in rows if r["path"] == path]
        times = sorted(r["s"] for r in mine)
        right = sum(r["right"] for r in mine)
        print(
            f"{path}: {right} of {len(mine)} right; {times[0]}-{times[-1]} s, median "
            f"{times[len(times) // 2]} s; load {min(r['load'] for r in mine)}-"
            f"{max(r['load'] for r in mine)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--api-base", help="use this running server instead of starting one")
    parser.add_argument("--alias", help="the served name (default: the file's name)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 400_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--local", action="store_true", help="also run it in-process (local/)")
    parser.add_argument("--prompt", default="auto", choices=["auto", "full", "small"])
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--model-seed", type=int, help="the sampling seed sent to the model")
    parser.add_argument("--max-iterations", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--show", action="store_true", help="print every root reply")
    parser.add_argument("--keep", type=Path, help="keep the runs in this traces folder")
    args = parser.parse_args()
    alias = args.alias or args.gguf.stem
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        args.traces = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base = args.api_base or stack.enter_context(llama_server(args.gguf, alias, args.threads))
        paths = [(f"openai/{alias}", base)]
        if args.local:
            paths.append((f"local/{args.gguf}", None))
        for model, api_base in paths:
            for size in args.sizes:
                for seed in args.seeds:
                    rows.append(one(model, api_base, size, seed, args))
    summary(rows)


if __name__ == "__main__":
    main()
