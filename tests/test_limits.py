"""Every limit ends the run with status `limit`, its name, a partial answer, and no call past it."""

from __future__ import annotations

import threading
import time
from typing import Any

from conftest import FakeOpenAIServer, FakeReply, by_model, echo_sub, repl, stored

from rlm_core import RLM


def test_max_iterations_asks_once_more_for_a_final_answer(fake: Any) -> None:
    replies = [repl("x = 1"), repl("x = 2"), "Best guess.\nFINAL(probably 2)"]
    result, _server, root = fake(replies, max_iterations=2)
    assert (result.status, result.limit) == ("limit", "max_iterations")
    assert result.answer == "probably 2"
    assert len(root.seen) == 3
    assert "no turns left" in root.seen[2][-1]["content"]
    run, _nodes = stored(result.run_id)
    assert (run.status, run.limit_name, run.answer) == (
        "limit",
        "max_iterations",
        "probably 2",
    )


def test_max_llm_calls_counts_every_call_in_the_tree_and_makes_none_past_it(fake: Any) -> None:
    code = "answer = 'partial'\nr = llm_query('a')\nr = llm_query_batched(['a'] * 10)"
    result, server, _ = fake([repl(code), repl("FINAL('never')")], max_llm_calls=5)
    assert (result.status, result.limit) == ("limit", "max_llm_calls")
    # a batch reserves all of its calls before any is sent: 10 do not fit in the 3 left
    assert server.request_count == 2
    assert result.llm_calls == 2
    assert result.answer == "partial"  # salvaged from the `answer` variable
    _, nodes = stored(result.run_id)
    assert all(n.status != "running" for n in nodes)
    blocked = [n for n in nodes if n.kind == "llm_query" and n.status == "limit"]
    assert len(blocked) == 1 and blocked[0].meta["refused_calls"] == 10
    assert "not called" in blocked[0].error and "3 of max_llm_calls=5 are left" in blocked[0].error


def test_limit_inside_model_try_except_still_ends_the_run(fake: Any) -> None:
    code = "try:\n    llm_query('a')\n    llm_query('b')\nexcept Exception:\n    pass\nprint('on')"
    result, _, root = fake([repl(code), repl("FINAL('x')")], max_llm_calls=2)
    assert result.limit == "max_llm_calls"
    assert len(root.seen) == 1


def test_max_tokens_over_the_whole_tree(fake: Any) -> None:
    def big_sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("y", usage={"prompt_tokens": 400, "completion_tokens": 100})

    code = "for i in range(10):\n    llm_query(f'q{i}')"
    result, _server, _ = fake([repl(code)], sub=big_sub, max_tokens=1000)
    assert result.limit == "max_tokens"
    assert result.tokens_in + result.tokens_out >= 1000
    # the call that crossed the line was the last one made
    assert result.tokens_in + result.tokens_out < 1000 + 500 + 1


def test_max_cost_usd_with_a_priced_model() -> None:
    def root(body: dict[str, Any]) -> str:
        return repl("for i in range(50):\n    llm_query('q' * 4000)")

    def sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("y", usage={"prompt_tokens": 100_000, "completion_tokens": 10})

    with FakeOpenAIServer(by_model({"gpt-4o-mini": sub, "gpt-4o": root})) as server:
        rlm = RLM(
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            server.base_url,
            api_key="k",
            max_cost_usd=0.05,
            retries=0,
        )
        result = rlm.run("ctx", "q")
    assert result.limit == "max_cost_usd"
    # gpt-4o-mini input costs $0.15 / M tokens: each sub-call costs $0.015 (the server reports
    # far more tokens than the prompt has, so each call costs more than was reserved for it):
    # the fourth call passes $0.05 and the fifth is refused
    sent = [n for n in stored(result.run_id)[1] if n.kind == "llm_query" and n.status == "ok"]
    assert len(sent) == 4 and server.request_count == 5
    assert result.cost_usd is not None and 0.05 < result.cost_usd < 0.05 + 0.015


def test_timeout_s_ends_a_run_stuck_in_a_cell(fake: Any) -> None:
    start = time.time()
    result, _, _ = fake([repl("while True:\n    pass")], timeout_s=3, cell_timeout_s=60)
    assert (result.status, result.limit) == ("limit", "timeout_s")
    assert time.time() - start < 15


def test_cell_timeout_is_fed_back_and_the_run_goes_on(fake: Any) -> None:
    replies = [repl("x = 5"), repl("while True:\n    pass"), repl("FINAL(x)")]
    result, _, root = fake(replies, cell_timeout_s=1)
    assert result.status == "ok"
    feedback = root.seen[2][-1]["content"]
    assert "1" in feedback and ("stopped" in feedback or "interrupted" in feedback)
    _, nodes = stored(result.run_id)
    assert [n for n in nodes if n.kind == "code"][1].meta["timed_out"]


def test_crashed_worker_restarts_and_the_model_is_told(fake: Any) -> None:
    replies = [repl("import os\nos._exit(3)"), repl("FINAL(len(context))")]
    result, _, root = fake(replies, context="abc")
    assert result.answer == "3"
    assert "variables are lost" in root.seen[1][-1]["content"]


def test_memory_bomb_is_contained(fake: Any) -> None:
    bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))"
    result, _, root = fake([repl(bomb), repl("FINAL('alive')")], worker_memory_mb=600)
    assert result.answer == "alive"
    assert "MemoryError" in root.seen[1][-1]["content"] or "lost" in root.seen[1][-1]["content"]


def test_cancel_stops_the_run_as_interrupted() -> None:
    cancel = threading.Event()

    def root(body: dict[str, Any]) -> str:
        return repl("while True:\n    pass")

    with FakeOpenAIServer(by_model({"root": root, "sub": echo_sub})) as server:
        rlm = RLM("openai/root", "openai/sub", server.base_url, api_key="k", retries=0)
        threading.Timer(1.5, cancel.set).start()
        start = time.time()
        result = rlm.run("ctx", "q", cancel=cancel)
    assert result.status == "interrupted"
    assert time.time() - start < 10
    run, nodes = stored(result.run_id)
    assert run.status == "interrupted"
    assert all(n.status != "running" for n in nodes)
