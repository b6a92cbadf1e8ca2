"""Budgets hold against hostile code: tokens and cost are reserved before a call is sent, a batch
reserves for all of its calls, a cost limit needs known prices, nothing is written past a limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeOpenAIServer, FakeReply, Scripted, by_model, repl, stored

from rlm_core import RLM
from rlm_core.cli import main
from rlm_core.errors import ModelError

DIGITS = "0123456789" * 4_000
"""40,000 characters the tokenizer counts as more tokens than the fake server reports (÷ 4)."""
PRICED = "gpt-4o-mini"
"""$0.15 / M input tokens: a DIGITS prompt costs $0.0015 as the server reports it."""


def honest(body: dict[str, Any], text: str = "ok") -> FakeReply:
    chars = sum(len(m["content"]) for m in body["messages"])
    return FakeReply(text, usage={"prompt_tokens": chars // 4, "completion_tokens": 1})


def run_priced(code: str, **limits: Any) -> tuple[Any, FakeOpenAIServer]:
    """Root and sub both the priced model, told apart by the root's system prompt."""
    root = Scripted([repl(code), repl("FINAL('done')")])

    def respond(body: dict[str, Any]) -> FakeReply:
        if body["messages"][0]["role"] == "system":
            return honest(body, str(root(body)))
        return honest(body)

    with FakeOpenAIServer(by_model({PRICED: respond})) as server:
        model = f"openai/{PRICED}"
        rlm = RLM(model, model, server.base_url, api_key="k", retries=0, **limits)
        return rlm.run("ctx", "q"), server


def sub_requests(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [b for b in server.requests if b["messages"][0]["role"] != "system"]


def test_a_batch_reserves_its_whole_cost_before_any_call_is_sent() -> None:
    # 200 calls of $0.0015 against $0.02: the old check let all of them through (15x)
    code = f"prompt = {DIGITS[:100]!r} * 400\nr = llm_query_batched([prompt] * 200)"
    result, server = run_priced(code, max_cost_usd=0.02)
    assert (result.status, result.limit) == ("limit", "max_cost_usd")
    assert sub_requests(server) == []
    assert result.cost_usd is not None and result.cost_usd <= 0.02
    _, nodes = stored(result.run_id)
    refused = [n for n in nodes if n.kind == "llm_query"]
    assert len(refused) == 1 and refused[0].meta["refused_calls"] == 200
    assert "would cost at least" in refused[0].error and "max_cost_usd" in refused[0].error


def test_concurrent_batches_from_threads_cannot_overshoot_the_cost_limit() -> None:
    # 8 threads x 4 calls, each batch fitting the limit on its own: all 32 used to go out
    code = (
        f"import threading\nprompt = {DIGITS[:100]!r} * 400\n"
        "def go():\n    try:\n        llm_query_batched([prompt] * 4)\n"
        "    except BaseException:\n        pass\n"
        "ts = [threading.Thread(target=go) for _ in range(8)]\n"
        "[t.start() for t in ts]\n[t.join() for t in ts]"
    )
    result, server = run_priced(code, max_cost_usd=0.02)
    assert result.limit == "max_cost_usd"
    assert result.cost_usd is not None and result.cost_usd <= 0.02
    assert 0 < len(sub_requests(server)) < 32
    # every call went out with its answer capped at what the limit left for it
    assert all(isinstance(b.get("max_tokens"), int) for b in server.requests)


def test_a_batch_cannot_overshoot_the_token_limit(fake: Any) -> None:
    prompts = "[('question %d ' % i) * 20 for i in range(90)]"
    result, server, _ = fake(
        [repl(f"r = llm_query_batched({prompts})")], sub=honest, max_tokens=5_000
    )
    assert (result.status, result.limit) == ("limit", "max_tokens")
    assert server.request_count == 1  # the root call; the batch of 90 did not fit
    assert result.tokens_in + result.tokens_out <= 5_000


def test_one_huge_prompt_is_refused_before_it_is_sent_or_written(
    fake: Any, traces_dir: Path
) -> None:
    result, server, _ = fake([repl("r = llm_query('x' * 4_000_000)")], max_tokens=20_000)
    assert result.limit == "max_tokens"
    assert server.request_count == 1
    assert "the prompt is about" in str(result.error)
    _, nodes = stored(result.run_id)
    (refused,) = [n for n in nodes if n.kind == "llm_query"]
    assert len(refused.input) <= 2_000  # the start of the prompt, not 4 MB of it
    written = sum(p.stat().st_size for p in traces_dir.rglob("*") if p.is_file())
    assert written < 3_000_000


def test_nothing_is_written_after_a_limit_fired(fake: Any) -> None:
    code = (
        "import threading\nllm_query('a')\n"
        "def spam():\n    for _ in range(200):\n        try:\n            llm_query('b')\n"
        "        except BaseException:\n            pass\n"
        "ts = [threading.Thread(target=spam) for _ in range(4)]\n[t.start() for t in ts]\n"
        "try:\n    llm_query_batched(['x'] * 100_000)\nexcept BaseException:\n    pass\n"
        "[t.join() for t in ts]"
    )
    result, server, _ = fake([repl(code)], max_llm_calls=3)
    assert result.limit == "max_llm_calls"
    _, nodes = stored(result.run_id)
    assert len(nodes) < 12, [n.kind for n in nodes]
    assert [n.status for n in nodes if n.kind == "llm_query"].count("limit") == 1
    assert server.request_count in (2, 3)  # whether a thread's call came before the batch


def test_a_cost_limit_with_a_model_of_unknown_price_is_refused_up_front(
    traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer("FINAL(1)") as server:
        rlm = RLM("openai/root", f"openai/{PRICED}", server.base_url, max_cost_usd=1.0)
        with pytest.raises(ModelError, match="price of openai/root is unknown"):
            rlm.run("ctx", "q")
        assert server.request_count == 0
        context = traces_dir.parent / "ctx.txt"
        context.write_text("hello")
        argv = ["run", "--context", str(context), "--query", "q", "--root-model", "openai/x"]
        argv += ["--sub-model", "demo/sub", "--api-base", server.base_url, "--max-cost-usd", "1"]
        assert main(argv) == 2
        assert server.request_count == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: max_cost_usd is set") and "\n" not in err
    assert not list(traces_dir.rglob("*.jsonl"))


@pytest.mark.usefixtures("fresh_app")
def test_the_run_page_refuses_a_cost_limit_it_cannot_price(traces_dir: Path) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.radio(key="ctx_source").set_value("Paste text").run()
    at.text_area(key="ctx_paste").set_value("some text").run()
    at.text_input[0].set_value("What?").run()
    at.selectbox(key="root_model").set_value(at.selectbox(key="root_model").options[-1]).run()
    at.text_input(key="root_model_custom").set_value("openai/unpriced-model").run()
    at.text_input(key="api_base").set_value("http://127.0.0.1:9/v1").run()
    at.number_input(key="lim_max_cost_usd").set_value(1.0).run()
    at.button(key="run_button").click().run()
    assert any("price of openai/unpriced-model is unknown" in e.value for e in at.error)
    assert not list(traces_dir.rglob("*.jsonl"))
