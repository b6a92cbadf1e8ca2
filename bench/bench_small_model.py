"""How often a small model, as the RLM root, answers the example questions correctly.

`python bench/bench_small_model.py --model local/PATH.gguf [--task needle ...] [--size N ...]
[--tries N] [--prompt auto|full|small] [--show]`: runs every task x size `--tries` times (new
document seed each try) with `demo/sub` as the sub model, and prints one line per run (verdict,
time, turns, answer) and the success rate. `--show` also prints every root reply, which is how
the small-model prompt was tuned (README, "Local GGUF models"). Needs requirements-local.txt for
`local/` models; any litellm model name works too.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RLM_LOCAL_N_CTX", "8192")

from rlm_core import RLM
from rlm_core.config import RLMConfig
from rlm_core.evaluate.examples import EXAMPLES
from rlm_core.evaluate.scoring import score
from rlm_core.store.trace_store import TraceStore


def one_run(
    model: str,
    task: str,
    size: int,
    seed: int,
    prompt: str,
    traces: Path,
    show: bool,
    ask: str | None,
) -> float:
    example = EXAMPLES[task]
    # a new document per try where the generator takes a seed (the stdlib code base has none)
    build: Callable[..., Any] = example.build
    seeded = "seed" in inspect.signature(build).parameters
    context = build(size, seed=seed) if seeded else build(size)
    question, expected = ask or example.questions[0], example.answers(context)[0]
    config = RLMConfig(root_model=model, sub_model="demo/sub", prompt=prompt, max_iterations=8)
    started = time.perf_counter()
    result = RLM(config=config, traces_dir=traces).run(context, question)
    took = time.perf_counter() - started
    points = score(example.scorer(0), result.answer, expected)
    answer = (result.answer or "").replace("\n", " ")[:60]
    print(
        f"{task:12} {size:>9,} seed {seed:<3} {'RIGHT' if points == 1 else 'wrong'} "
        f"{took:6.1f} s {result.iterations:>2} turns  {result.status:9} {answer!r}",
        flush=True,
    )
    if show:
        store = TraceStore(traces)
        for node in store.nodes(result.run_id):
            if node.kind == "lm" and node.depth == 0:
                print("   | " + (node.output or "").replace("\n", "\n   | "))
        store.close()
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", nargs="+", default=["needle"], choices=list(EXAMPLES))
    parser.add_argument("--size", nargs="+", type=int, default=[200_000, 1_000_000])
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--prompt", default="auto", choices=["auto", "full", "small"])
    parser.add_argument("--question", help="ask this instead of the example's first question")
    parser.add_argument("--show", action="store_true", help="print every root reply")
    args = parser.parse_args()
    points: list[float] = []
    with tempfile.TemporaryDirectory() as traces:
        for task in args.task:
            for size in args.size:
                for seed in range(1, args.tries + 1):
                    points.append(
                        one_run(
                            args.model,
                            task,
                            size,
                            seed,
                            args.prompt,
                            Path(traces),
                            args.show,
                            args.question,
                        )
                    )
    right = sum(1 for p in points if p == 1)
    print(f"{right} of {len(points)} right ({100 * right / len(points):.0f} %)")


if __name__ == "__main__":
    main()
