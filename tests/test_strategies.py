"""Strategies side by side: every strategy on the demo models and on the fake server writes a normal
run tree; plain cuts are reported, BM25 finds the needle, summarizing ends, the Algorithm 2 scaffold
really has the document in its window and compacts, and the ablation's sub-calls fail clearly."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import stored
from fake_openai import FakeOpenAIServer, by_model

from rlm_core import TraceStore
from rlm_core.config import RLMConfig
from rlm_core.evaluate.evaluator import EvalPlan, Evaluator
from rlm_core.evaluate.examples import NEEDLE, label_counts, needle_document, records_document
from rlm_core.strategies.algorithm2 import ACTION_MARK, COMPACTED, parse_action
from rlm_core.strategies.registry import STRATEGIES, run_strategy
from rlm_core.strategies.single import bm25_top, chunk_bounds

QUESTION = "What is the secret code for the vault?"
DEMO = RLMConfig(cell_timeout_s=20)


def action(tool: str, **fields: str) -> str:
    return f"Next.\n```action\n{json.dumps({'tool': tool, **fields})}\n```"


@pytest.fixture
def server() -> Iterator[tuple[RLMConfig, list[list[dict[str, Any]]]]]:
    """A fake server whose root follows whichever protocol its system prompt asks for."""
    roots: list[list[dict[str, Any]]] = []

    def root(body: dict[str, Any]) -> str:
        messages = body["messages"]
        roots.append(messages)
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if ACTION_MARK in system:
            return action("finish", answer="48213")
        if "REPL" in system:
            return '```repl\nFINAL("48213")\n```'
        return "48213"

    with FakeOpenAIServer(by_model({"root": root, "sub": lambda body: "a short note"})) as fake:
        config = RLMConfig(
            root_model="openai/root",
            sub_model="openai/sub",
            api_base=fake.base_url,
            api_key="sk-fake",
            retries=0,
            cell_timeout_s=10,
        )
        yield config, roots


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_runs_on_demo_models_and_writes_a_run_tree(name: str) -> None:
    result = run_strategy(name, needle_document(60_000), QUESTION, DEMO)
    assert result.status == "ok", result.error
    run, nodes = stored(result.run_id)
    root = nodes[0]
    assert root.kind == "run" and root.meta["strategy"] == name
    assert {"lm", "final"} <= {n.kind for n in nodes}
    assert run.llm_calls == result.llm_calls > 0
    assert result.cost_usd == 0.0 and run.answer == result.answer


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_runs_against_the_fake_server(server: Any, name: str) -> None:
    config, _ = server
    context = "Filler sentence. " * 200 + NEEDLE
    options: dict[str, Any] = {} if name.startswith("rlm") else {"window_tokens": 1_600}
    result = run_strategy(name, context, QUESTION, config, **options)
    assert result.status == "ok", result.error
    assert result.answer and "48213" in result.answer
    assert result.tokens_in > 0 and result.cost_usd is None  # the fake models have no price
    _, nodes = stored(result.run_id)
    assert nodes[0].meta["strategy"] == name


def test_plain_reports_the_cut_on_the_node_and_in_the_prompt(server: Any) -> None:
    config, roots = server
    context = "x" * 20_000
    result = run_strategy("plain", context, QUESTION, config, window_tokens=2_000)
    _, nodes = stored(result.run_id)
    lm = next(n for n in nodes if n.kind == "lm")
    kept = lm.context_spans[0][1]
    assert lm.context_spans == [[0, kept]] and 0 < kept < 20_000
    assert lm.meta["truncated_chars"] == nodes[0].meta["truncated_chars"] == 20_000 - kept
    assert "were never shown to the model" in nodes[0].meta["strategy_note"]
    assert f"remaining {20_000 - kept:,} characters" in roots[0][0]["content"]


def test_plain_on_a_document_that_fits_cuts_nothing() -> None:
    result = run_strategy("plain", needle_document(10_000), QUESTION, DEMO)
    _, nodes = stored(result.run_id)
    assert nodes[0].meta["truncated_chars"] == 0 and result.answer == NEEDLE


def test_bm25_ranks_the_chunk_holding_the_needle_first() -> None:
    text = needle_document(100_000)
    bounds = chunk_bounds(text, 1_000)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    best, _ = bm25_top([text[a:b] for a, b in bounds], QUESTION, 3)[0]
    assert NEEDLE in text[bounds[best][0] : bounds[best][1]]

    result = run_strategy("rag", text, QUESTION, DEMO, chunk_chars=800, top_k=2)
    _, nodes = stored(result.run_id)
    lm = next(n for n in nodes if n.kind == "lm")
    at = text.index(NEEDLE)
    assert any(a <= at < b for a, b in lm.context_spans)
    assert len(lm.meta["retrieved"]) == 2 and lm.meta["retrieved"][0]["rank"] == 1
    assert result.answer == NEEDLE


def test_summarizing_ends_when_the_notes_stop_shrinking(server: Any) -> None:
    config, _ = server
    # a sub model that copies its input back never shrinks anything
    routes = {"root": lambda b: "done", "sub": lambda b: b["messages"][-1]["content"]}
    with FakeOpenAIServer(by_model(routes)) as echo:
        config = config.with_(api_base=echo.base_url)
        result = run_strategy(
            "summarize", "word " * 5_000, QUESTION, config, window_tokens=1_500, part_chars=2_000
        )
    assert result.status == "ok"
    _, nodes = stored(result.run_id)
    assert nodes[0].meta["summary_stop"] == "did_not_shrink"
    assert nodes[0].meta["summary_rounds"] == 1 and nodes[0].meta["truncated_chars"] > 0


def test_summarizing_is_capped_in_rounds_and_batched_per_round(server: Any) -> None:
    config, _ = server

    def halve(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"].split("):\n", 1)[1]
        return text[: len(text) // 2]

    with FakeOpenAIServer(by_model({"root": lambda b: "done", "sub": halve})) as half:
        config = config.with_(api_base=half.base_url)
        result = run_strategy(
            "summarize",
            "word " * 8_000,
            QUESTION,
            config,
            window_tokens=1_500,
            part_chars=4_000,
            max_rounds=2,
        )
    _, nodes = stored(result.run_id)
    subs = [n for n in nodes if n.kind == "llm_query"]
    assert nodes[0].meta["summary_stop"] == "max_rounds" and nodes[0].meta["summary_rounds"] == 2
    assert {n.meta["round"] for n in subs} == {1, 2}
    assert len({n.meta["batch"] for n in subs if n.meta["round"] == 1}) == 1
    assert result.llm_calls == len(subs) + 1


def test_summarize_on_demo_models_finds_the_needle_in_the_notes() -> None:
    result = run_strategy("summarize", needle_document(300_000), QUESTION, DEMO)
    _, nodes = stored(result.run_id)
    assert nodes[0].meta["summary_rounds"] == 1 and result.answer == NEEDLE
    assert all(n.context_spans for n in nodes if n.kind == "llm_query")


def test_algorithm2_has_the_document_in_the_window_and_compacts(server: Any) -> None:
    config, _ = server
    document = "The ledger was balanced. " * 80 + NEEDLE
    seen: list[list[dict[str, Any]]] = []
    script = [
        action("python", code="print(*range(2000))\nprint(llm_query('hi'))"),
        action("llm", prompt="Question: code?\nExcerpt: " + NEEDLE),
        action("finish", answer="48213"),
    ]

    def root(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if messages[0]["role"] != "system":
            return "Summary: the code may be 48213."  # the compaction call
        seen.append(messages)
        return script[min(len(seen), len(script)) - 1]

    with FakeOpenAIServer(by_model({"root": root, "sub": lambda b: "48213"})) as agent:
        config = config.with_(api_base=agent.base_url)
        result = run_strategy("algorithm2", document, QUESTION, config, window_tokens=3_000)
    assert result.status == "ok" and result.answer == "48213"
    assert document in seen[0][1]["content"]  # the context IS in the root's window
    assert COMPACTED in seen[1][1]["content"] and document not in json.dumps(seen[1])
    _, nodes = stored(result.run_id)
    kinds = [n.kind for n in nodes]
    assert kinds.count("code") == 1 and kinds.count("llm_query") == 1
    code = next(n for n in nodes if n.kind == "code")
    assert "ask the helper model with the llm action" in (code.model_view or "")
    compaction = next(n for n in nodes if n.kind == "lm" and "compaction" in n.meta)
    assert compaction.meta["compaction"] == 1 and nodes[0].meta["compactions"] == 1
    first_lm = next(n for n in nodes if n.kind == "lm")
    assert first_lm.context_spans == [[0, len(document)]]


def test_algorithm2_cuts_a_document_larger_than_the_window_on_demo_models() -> None:
    result = run_strategy("algorithm2", needle_document(300_000), QUESTION, DEMO)
    _, nodes = stored(result.run_id)
    assert nodes[0].meta["truncated_chars"] > 200_000
    assert "cut by" in nodes[0].meta["strategy_note"]
    assert result.answer == "My window does not say."


def test_parse_action_explains_what_is_wrong() -> None:
    assert parse_action(action("python", code="1")) == {"tool": "python", "value": "1"}
    assert "no ```action" in str(parse_action("just text"))
    assert "not valid JSON" in str(parse_action("```action\n{oops\n```"))
    assert "must be" in str(parse_action('```action\n{"tool": "search"}\n```'))
    assert "needs" in str(parse_action('```action\n{"tool": "llm"}\n```'))


def test_rlm_without_sub_calls_gets_a_clear_error_and_is_told_up_front() -> None:
    code = '```repl\ntry:\n    llm_query("x")\nexcept RuntimeError as e:\n    print(e)\n```'
    with FakeOpenAIServer(
        by_model(
            {"root": lambda b: code if len(b["messages"]) < 3 else '```repl\nFINAL("ok")\n```'}
        )
    ) as srv:
        config = RLMConfig(
            root_model="openai/root",
            sub_model="openai/root",
            api_base=srv.base_url,
            api_key="sk-fake",
            retries=0,
        )
        result = run_strategy("rlm-no-subcalls", "some context", QUESTION, config)
        system = srv.requests[0]["messages"][0]["content"]
    assert result.answer == "ok" and "are disabled" in system
    _, nodes = stored(result.run_id)
    cell = next(n for n in nodes if n.kind == "code")
    assert "llm_query is disabled in this run" in (cell.stdout or "")
    assert not [n for n in nodes if n.kind == "llm_query"]


def test_code_alone_counts_every_record_on_demo_models() -> None:
    text = records_document(20_000)
    result = run_strategy("rlm-no-subcalls", text, "How many tickets are labelled returns?", DEMO)
    assert result.answer == str(label_counts(text)["returns"])


def test_depth_strategies_set_max_depth_and_grow_deeper_trees() -> None:
    config = DEMO.with_(root_model="demo/recursive", child_root_model="demo/recursive")
    depths = {}
    for name in ("rlm-depth-1", "rlm-depth-2"):
        result = run_strategy(name, needle_document(30_000), QUESTION, config)
        run, nodes = stored(result.run_id)
        assert run.config["max_depth"] == int(name[-1])
        depths[name] = max(n.depth for n in nodes if n.kind == "run")
    assert depths == {"rlm-depth-1": 1, "rlm-depth-2": 2}


def test_limits_count_over_baselines_too() -> None:
    result = run_strategy(
        "summarize", needle_document(300_000), QUESTION, DEMO.with_(max_llm_calls=2)
    )
    assert result.status == "limit" and result.limit == "max_llm_calls"
    assert result.llm_calls == 2


def test_unknown_strategies_and_options_are_refused_before_running() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        run_strategy("magic", "x", "q", DEMO)
    with pytest.raises(ValueError, match="unknown options for rag"):
        run_strategy("rag", "x", "q", DEMO, chunk=5)
    with pytest.raises(ValueError, match="takes no options"):
        run_strategy("rlm", "x", "q", DEMO, top_k=5)


def test_strategies_are_methods_of_an_evaluation() -> None:
    plan = EvalPlan(
        ("needle",), (10_000,), (("demo/root", "demo/sub"),), methods=("rag", "plain", "algorithm2")
    )
    store = TraceStore()
    try:
        rows = Evaluator(plan, store).run()
        assert {r.method: r.score for r in rows} == {"rag": 1.0, "plain": 1.0, "algorithm2": 1.0}
        assert all(r.run_id and store.get_run(r.run_id) for r in rows)
        assert {r.method: r.sub_model for r in rows}["rag"] is None
    finally:
        store.close()
