"""Provider faults through the whole engine: every failed attempt is retried within limits and
recorded on its node; when retries are spent the run ends cleanly with a clear error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FakeOpenAIServer, FakeReply, by_model, echo_sub, repl, stored

from rlm_core import RLM
from rlm_core.models.litellm_client import LiteLLMClient
from rlm_core.models.model import Role
from rlm_core.types import Node, RunResult, RunSummary

Reply = str | FakeReply
EMPTY_CHOICES = (
    '{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}'
)


class Sequence:
    """Replies in order; the last repeats."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls += 1
            return self.replies[min(self.calls, len(self.replies)) - 1]


@pytest.fixture
def run_with() -> Iterator[Callable[..., tuple[RunResult, RunSummary, list[Node]]]]:
    servers: list[FakeOpenAIServer] = []

    def run(
        root: Callable[[dict[str, Any]], Reply],
        sub: Callable[[dict[str, Any]], Reply] = echo_sub,
        retries: int = 2,
        cancel: threading.Event | None = None,
        **config: Any,
    ) -> tuple[RunResult, RunSummary, list[Node]]:
        server = FakeOpenAIServer(by_model({"root": root, "sub": sub}))
        servers.append(server)

        def client(name: str, role: Role) -> LiteLLMClient:
            return LiteLLMClient(
                name,
                api_base=server.base_url,
                api_key="sk-fake-provider",
                retries=retries,
                backoff_s=0.01,
                timeout_s=config.get("request_timeout_s", 30),
            )

        config.setdefault("cell_timeout_s", 10)
        rlm = RLM("openai/root", "openai/sub", server.base_url, models=client, **config)
        result = rlm.run("some context " * 50, "What?", cancel=cancel)
        run_row, nodes = stored(result.run_id)
        return result, run_row, nodes

    yield run
    for server in servers:
        server.close()


def of_kind(nodes: list[Node], kind: str) -> list[Node]:
    return [n for n in nodes if n.kind == kind]


def test_root_faults_are_retried_and_counted_on_the_node(run_with: Any) -> None:
    root = Sequence(
        [
            FakeReply("slow down", status=429, headers={"Retry-After": "0.2"}),
            FakeReply("backend fell over", status=500),
            FakeReply(raw_body="{this is not json"),
            repl("FINAL('done')"),
        ]
    )
    started = time.monotonic()
    result, run_row, nodes = run_with(root, retries=3)
    assert result.status == "ok" and result.answer == "done", result
    assert 0.2 <= time.monotonic() - started < 10
    [lm] = of_kind(nodes, "lm")
    assert lm.status == "ok" and lm.meta["retries"] == 3
    errors = lm.meta["retry_errors"]
    assert errors[0].startswith("Rate limited for openai/root (HTTP 429)")
    assert "HTTP 500" in errors[1] and "malformed response" in errors[2]
    assert run_row.status == "ok"


def test_bad_200_answers_are_retried(run_with: Any) -> None:
    root = Sequence([FakeReply(raw_body=EMPTY_CHOICES), repl("FINAL('fine')")])
    result, _, nodes = run_with(root)
    assert result.answer == "fine"
    [lm] = of_kind(nodes, "lm")
    assert lm.meta["retries"] == 1 and "no choices" in lm.meta["retry_errors"][0]


def test_a_sub_call_that_keeps_failing_is_an_error_in_the_cell_not_the_run(run_with: Any) -> None:
    root = Sequence(
        [
            repl("try:\n    llm_query('x')\nexcept RuntimeError as e:\n    print('caught:', e)"),
            repl("FINAL('went on')"),
        ]
    )
    sub = Sequence([FakeReply("overloaded", status=503)])
    result, _, nodes = run_with(root, sub, retries=2)
    assert result.status == "ok" and result.answer == "went on"
    [call] = of_kind(nodes, "llm_query")
    assert call.status == "error" and call.meta["retries"] == 2
    assert "after 2 retries" in str(call.error) and "HTTP 503" in str(call.error)
    [first, _] = of_kind(nodes, "code")
    assert "caught: llm_query failed:" in str(first.stdout)
    assert sub.calls == 3


def test_a_root_whose_retries_run_out_ends_the_run_with_an_error(run_with: Any) -> None:
    result, run_row, nodes = run_with(Sequence([FakeReply("down", status=502)]), retries=1)
    assert result.status == "error"
    assert "The provider returned an error for openai/root after 1 retry" in str(result.error)
    assert run_row.status == "error"
    [lm] = of_kind(nodes, "lm")
    assert lm.status == "error" and lm.meta["retries"] == 1
    assert all(n.status != "running" for n in nodes)


def test_a_hanging_root_times_out_per_request_then_gives_up(run_with: Any) -> None:
    started = time.monotonic()
    result, _, nodes = run_with(Sequence([FakeReply(hang=True)]), retries=1, request_timeout_s=1)
    assert time.monotonic() - started < 8
    assert result.status == "error"
    assert "No answer from openai/root within 1 s after 1 retry" in str(result.error)
    [lm] = of_kind(nodes, "lm")
    assert lm.meta["retries"] == 1


def test_a_long_retry_after_does_not_outlive_the_run_time_limit(run_with: Any) -> None:
    root = Sequence([FakeReply("busy", status=429, headers={"Retry-After": "30"})])
    started = time.monotonic()
    result, run_row, nodes = run_with(root, retries=3, timeout_s=3)
    assert time.monotonic() - started < 6
    assert result.status == "limit" and result.limit == "timeout_s", result
    [lm] = of_kind(nodes, "lm")
    assert lm.status == "limit" and "no time left to retry" in str(lm.error)
    assert run_row.status == "limit"


def test_stop_during_a_retry_wait_interrupts_at_once(run_with: Any) -> None:
    cancel = threading.Event()
    root = Sequence([FakeReply("busy", status=429, headers={"Retry-After": "30"})])
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    result, _, nodes = run_with(root, retries=3, cancel=cancel)
    assert time.monotonic() - started < 5
    assert result.status == "interrupted", result
    [lm] = of_kind(nodes, "lm")
    assert lm.status == "interrupted" and "stopped while waiting" in str(lm.error)


def test_a_truncated_reply_is_recorded_and_the_run_goes_on(run_with: Any) -> None:
    root = Sequence(
        [
            FakeReply("Let me look.\n```repl\nprint(context[:10", finish_reason="length"),
            repl("FINAL('recovered')"),
        ]
    )
    result, _, nodes = run_with(root)
    assert result.status == "ok" and result.answer == "recovered"
    first, second = of_kind(nodes, "lm")
    assert first.meta["finish_reason"] == "length" and second.meta["finish_reason"] == "stop"
    # the parser may salvage an unterminated last block; either way the run goes on
    assert all(code.status in ("ok", "error") for code in of_kind(nodes, "code"))


def test_a_batch_with_mixed_faults_keeps_the_good_answers(run_with: Any) -> None:
    def sub(body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        if prompt == "bad":
            return FakeReply("nope", status=500)
        if prompt == "slow":
            return FakeReply("late but fine", delay_s=0.3)
        return f"echo {prompt}"

    root = Sequence(
        [
            repl("out = llm_query_batched(['a', 'bad', 'slow', 'b'])\nprint(out)"),
            repl("FINAL_VAR('out')"),
        ]
    )
    result, _, nodes = run_with(root, sub, retries=1)
    assert result.status == "ok"
    assert "echo a" in result.answer and "late but fine" in result.answer
    assert "[error: llm_query failed:" in result.answer
    calls = {n.input: n for n in of_kind(nodes, "llm_query")}
    assert calls["bad"].status == "error" and calls["bad"].meta["retries"] == 1
    assert calls["slow"].status == "ok" and "retries" not in calls["slow"].meta
