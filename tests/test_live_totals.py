"""A running run's totals are live in the store (the Runs page, the Explorer and the Run page read
them), and a stopped run's counts agree everywhere, with an answer or none (never its code)."""

from __future__ import annotations

import threading
import time

from conftest import FakeOpenAIServer, batch_models

from rlm_core import RLM, TraceStore
from rlm_core.types import RunResult, RunSummary

CALLS = 400


def run_watched(
    stop_after_calls: int | None = None,
) -> tuple[RunResult, list[RunSummary], TraceStore]:
    """One run of CALLS batched sub-calls, its run row read every 0.1 s while it goes (and Stop
    pressed once the row shows `stop_after_calls`)."""
    store, cancel, seen = TraceStore(), threading.Event(), []
    with FakeOpenAIServer(batch_models(CALLS, delay_s=0.01)) as server:
        rlm = RLM(
            "openai/root", "openai/sub", server.base_url, api_key="k", store=store, concurrency=4
        )
        out: list[RunResult] = []
        worker = threading.Thread(target=lambda: out.append(rlm.run("ctx", "q", cancel=cancel)))
        worker.start()
        while worker.is_alive():
            time.sleep(0.1)
            run = next(iter(store.list_runs()), None)
            if run is not None and run.status == "running":
                seen.append(run)
                if stop_after_calls and (run.llm_calls or 0) >= stop_after_calls:
                    cancel.set()
        worker.join()
    return out[0], seen, store


def test_a_running_runs_row_counts_calls_and_tokens_as_they_finish() -> None:
    result, seen, store = run_watched()
    store.close()
    assert result.status == "ok" and result.llm_calls == CALLS + 2
    # all of this happened inside the first root iteration, which used to show 0 calls
    during = [r for r in seen if 1 < (r.llm_calls or 0) < CALLS]
    assert len({r.llm_calls for r in during}) >= 3, [r.llm_calls for r in seen]
    assert all(r.iterations == 1 and r.tokens > 0 for r in during)


def test_after_stop_the_counts_agree_and_code_is_not_the_answer() -> None:
    result, _, store = run_watched(stop_after_calls=40)
    try:
        run = store.get_run(result.run_id)
        nodes = store.nodes(result.run_id)
    finally:
        store.close()
    assert result.status == "interrupted" and run is not None and run.status == "interrupted"
    # the root's last reply was code that never finished: that is no answer
    assert result.answer is None and run.answer is None
    # sub-calls queued when Stop came are recorded as "not called"; they are no model calls
    called = [
        n
        for n in nodes
        if n.kind in ("lm", "llm_query") and not (n.error or "").startswith("not called")
    ]
    assert run.llm_calls == result.llm_calls == len(called)
    assert 40 <= result.llm_calls < CALLS
