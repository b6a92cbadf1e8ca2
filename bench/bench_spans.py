"""Provenance benchmark: how long placing the prompts of a 10,000-sub-call run takes on a 5 MB
repetitive server log, and what it places.

Run `python bench/bench_spans.py`. Three measures, each over the same 10,000 prompts (a map in
500-character chunks, the instruction around each chunk):
- engine run: the real REPL worker and a scripted root (`llm_query_batched` over the chunks),
  with the time spent in provenance.place summed over the run;
- with the worker's hints (what the engine gets): place() on the prompts directly;
- without hints (imported traces, other REPLs): matching alone.
The index is built once first (it is built on first use in a run) and timed on its own. The
machine may be shared: CPU seconds of this process are printed beside wall seconds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from provenance_corpus import Score, run_shapes, score, server_log, shape  # noqa: E402

from rlm_core.engine import provenance  # noqa: E402
from rlm_core.engine.provenance import Hints, place  # noqa: E402
from rlm_core.engine.spans import ContextIndex  # noqa: E402

CHARS, CALLS = 5_000_000, 10_000
MAP = """
size = len(context) // {calls} + 1
prompts, truth = [], []
for i in range(0, len(context), size):
    prompts.append(f"Does this part of the log show a failure?\\n\\n{{context[i:i + size]}}")
    truth.append([[i, min(i + size, len(context))]])
"""


def timed_place(totals: list[float]) -> Any:
    """provenance.place, adding the CPU seconds of each call to totals[0] (the calls run on 16
    threads at once: wall time would count each thread's waits for the others)."""
    real = provenance.place

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            totals[0] += time.thread_time() - started

    return wrapper


def main() -> None:
    log = server_log(CHARS)
    cell = shape("map", MAP, calls=CALLS)
    prompts, truth = cell.truth(log)
    size = len(log) // CALLS + 1
    print(f"{len(log):,} chars, {len(prompts):,} prompts of {len(prompts[0]):,} chars")

    totals = [0.0]
    provenance.place = timed_place(totals)  # the engine's modules call it through the module
    import rlm_core.engine.positions as positions

    positions.place = provenance.place
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        (calls,) = run_shapes(log, [cell], tmp)
    wall = time.perf_counter() - started
    positions.place = provenance.place = place
    recorded = [(n.context_spans, n.meta.get("ambiguous") or []) for n in calls]
    result = score(recorded, truth, log, Score())
    print(f"engine run: {wall:.1f} s wall, {totals[0]:.2f} s CPU in provenance.place; {result}")

    index = ContextIndex(log)
    started = time.perf_counter()
    index.windows()
    index._line_starts()
    print(f"index build: {time.perf_counter() - started:.2f} s")

    head = prompts[0].index("\n\n") + 2
    hinted = [
        Hints(exact=[[head, len(p), i * size]], copied=[[[0, len(log)]]])
        for i, p in enumerate(prompts)
    ]
    bare = [provenance.NO_HINTS] * len(prompts)
    for label, hints in (("with the worker's hints", hinted), ("matching alone", bare)):
        started, cpu = time.perf_counter(), time.process_time()
        placed = [place(p, index, h) for p, h in zip(prompts, hints, strict=True)]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        result = score([(p.spans, p.ambiguous) for p in placed], truth, log, Score())
        print(f"{label}: {seconds:.2f} s ({cpu:.2f} s CPU) for {len(prompts):,} prompts; {result}")


if __name__ == "__main__":
    main()
