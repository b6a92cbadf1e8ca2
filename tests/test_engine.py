"""The RLM protocol end to end: litellm over real HTTP to the fake server, a real sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

from conftest import FakeReply, repl, stored

from rlm_core import RLM


def root_text(seen: list[list[dict[str, Any]]]) -> str:
    return json.dumps(seen)


def test_context_stays_out_of_the_root_window_and_code_runs_in_order(fake: Any) -> None:
    context = "intro " * 100 + "NEEDLE-7731 is hidden here" + " tail" * 100
    replies = [
        "I look first.\n```repl\nfirst = context.find('NEEDLE')\n```\n"
        "```python\nprint('found at', first)\n```",
        repl("FINAL_VAR('first')"),
    ]
    result, _, root = fake(replies, context, "Where is the needle?")
    assert result.status == "ok"
    assert result.answer == str(context.find("NEEDLE"))
    first_call = root_text(root.seen[:1])
    assert "NEEDLE-7731" not in root_text(root.seen)
    assert "Where is the needle?" in first_call
    assert f"{len(context):,} characters" in first_call
    feedback = root.seen[1][-1]["content"]
    assert f"found at {context.find('NEEDLE')}" in feedback
    assert "REPL variables: first" in feedback
    assert "Question: Where is the needle?" in feedback  # each turn restates the question


def test_output_is_truncated_with_a_marker(fake: Any) -> None:
    result, _, root = fake(
        [repl("print('x' * 5000)"), repl("FINAL('done')")], max_output_chars=1000
    )
    feedback = root.seen[1][-1]["content"]
    assert "x" * 1000 in feedback and "x" * 1001 not in feedback
    assert "[+4,000 more chars]" in feedback
    _, nodes = stored(result.run_id)
    code = next(n for n in nodes if n.kind == "code")
    assert len(code.stdout.strip()) == 5000  # the trace keeps everything
    assert "+4,000 more chars" in code.model_view


def test_text_final_only_counts_without_code(fake: Any) -> None:
    replies = [
        repl("x = 41", "FINAL(guess)"),
        repl("x += 1"),
        "All done.\nFINAL_VAR(x)",
    ]
    result, _, root = fake(replies)
    assert result.answer == "42"
    assert len(root.seen) == 3
    assert "FINAL tag written as text next to code is ignored" in root.seen[1][-1]["content"]
    _run, nodes = stored(result.run_id)
    root_node = next(n for n in nodes if n.kind == "run")
    assert root_node.meta["ignored_text_finals"] == [1]
    assert [n.kind for n in nodes].count("final") == 1


def test_reply_without_code_is_told_to_write_code(fake: Any) -> None:
    result, _, root = fake(["I think it is 7.", repl("FINAL(7)")])
    assert result.answer == "7"
    assert "no ```repl code block" in root.seen[1][-1]["content"]


def test_a_batch_is_numbered_in_batch_order_whatever_thread_starts_first(fake: Any) -> None:
    # the same run must give the same trace (Ray and threads are compared node by node), and
    # stepping through a fan-out should go chunk 0, 1, 2, ... not in the order threads woke up
    code = """
answers = llm_query_batched([f"part {i}: " + context[i * 10:i * 10 + 10] for i in range(48)])
rest = rlm_query_batched(["a", "b", "c"])
FINAL(llm_query("last"))
"""
    result, _, _ = fake([repl(code)], "x" * 500)
    _, nodes = stored(result.run_id)
    cell = next(n for n in nodes if n.kind == "code" and n.depth == 0)
    subs = sorted((n for n in nodes if n.parent_id == cell.node_id), key=lambda n: n.seq)
    batches = [n for n in subs if "batch" in n.meta]
    assert [(n.kind, n.meta["batch_index"]) for n in batches] == [
        *(("llm_query", i) for i in range(48)),
        *(("rlm_query", i) for i in range(3)),
    ]
    assert [n.seq for n in subs] == list(range(subs[0].seq, subs[0].seq + 52))
    assert subs[-1].input == "last"


def test_reserved_names_are_restored_after_a_cell(fake: Any) -> None:
    replies = [
        repl("context = 'clobbered'\nllm_query = None\nFINAL = 3"),
        repl("FINAL(context + ' ' + llm_query('hi'))"),
    ]
    result, _, _ = fake(replies, context="original")
    assert result.answer.startswith("original sub saw")


def test_sub_calls_are_traced_with_depth_spans_and_answers(fake: Any) -> None:
    context = "".join(f"line {i}: value {i * 7}\n" for i in range(2000))
    code = """
chunks = [context[i:i + 5000] for i in range(0, 20000, 5000)]
answers = llm_query_batched([f"Sum these:\\n{c}" for c in chunks])
one = llm_query("Just this: " + context[100:400])
FINAL(str(len(answers)) + " " + one[:7])
"""
    result, _, _ = fake([repl(code)], context)
    assert result.answer == "4 sub saw"
    _, nodes = stored(result.run_id)
    subs = [n for n in nodes if n.kind == "llm_query"]
    assert len(subs) == 5
    code_node = next(n for n in nodes if n.kind == "code")
    assert all(n.parent_id == code_node.node_id and n.depth == 1 for n in subs)
    batch = [n for n in subs if "batch" in n.meta]
    assert sorted(n.meta["batch_index"] for n in batch) == [0, 1, 2, 3]
    assert sorted(tuple(s) for n in batch for s in n.context_spans) == [
        (0, 5000),
        (5000, 10000),
        (10000, 15000),
        (15000, 20000),
    ]
    single = next(n for n in subs if "batch" not in n.meta)
    assert single.context_spans == [[100, 400]]
    assert single.output.startswith("sub saw")
    assert all(n.model == "openai/sub" for n in subs)


def test_batched_calls_run_concurrently(fake: Any) -> None:
    def slow_sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("ok", delay_s=0.5)

    code = "r = llm_query_batched([f'q{i}' for i in range(16)])\nFINAL(len(r))"
    start = time.time()
    result, _server, _ = fake([repl(code)], sub=slow_sub)
    assert result.answer == "16"
    _, nodes = stored(result.run_id)
    subs = [n for n in nodes if n.kind == "llm_query"]
    # 16 calls of 0.5 s each overlapped: their spans of time intersect
    assert max(n.started_at for n in subs) < min(n.ended_at for n in subs)
    assert time.time() - start < 6


def test_depth_two_recursion_and_fallback_at_max_depth(fake: Any) -> None:
    # every RLM in the tree uses the same scripted root: recurse once per level, then answer
    def root(body: dict[str, Any]) -> str:
        first = body["messages"][1]["content"]
        if len(body["messages"]) > 2:
            return "```repl\nFINAL(r)\n```"
        if "Question: level2" in first:
            return repl("r = 'leaf:' + rlm_query('level3', context[:5])")
        if "Question: level1" in first:
            return repl("r = 'mid:' + rlm_query('level2', context[:10])")
        return repl("r = 'top:' + rlm_query('level1', context=context[:20])")

    context = "abcdefghijklmnopqrstuvwxyz" * 10
    from conftest import FakeOpenAIServer, by_model, echo_sub

    with FakeOpenAIServer(by_model({"root": root, "sub": echo_sub})) as server:
        rlm = RLM(
            "openai/root",
            "openai/sub",
            server.base_url,
            api_key="k",
            max_depth=2,
            child_root_model="openai/root",
            retries=0,
        )
        result = rlm.run(context, "top")
    assert result.status == "ok"
    assert str(result.answer).startswith("top:mid:leaf:sub saw")
    _, nodes = stored(result.run_id)
    runs = [n for n in nodes if n.kind == "run"]
    assert sorted(n.depth for n in runs) == [0, 1, 2]
    rlm_nodes = [n for n in nodes if n.kind == "rlm_query"]
    assert sorted(n.depth for n in rlm_nodes) == [1, 2]
    for child in runs[1:]:
        parent = next(n for n in nodes if n.node_id == child.parent_id)
        assert parent.kind == "rlm_query" and parent.depth == child.depth
    fallback = next(n for n in nodes if n.kind == "llm_query")
    assert fallback.meta["fallback_from"] == "rlm_query" and fallback.depth == 3
    assert fallback.input == "level3\n\nContext:\nabcde"  # the context went along
    assert next(n for n in rlm_nodes if n.depth == 1).context_spans == [[0, 20]]
    lm_depths = {n.depth for n in nodes if n.kind in ("lm", "code")}
    assert lm_depths == {0, 1, 2}


def test_child_rlm_gets_its_own_sandbox(fake: Any) -> None:
    def root(body: dict[str, Any]) -> str:
        first = body["messages"][1]["content"]
        if len(body["messages"]) > 2:
            return "```repl\nFINAL(out)\n```"
        if "Question: child" in first:
            return repl("secret_var = 1\nout = str(type(context).__name__) + str(len(context))")
        return repl(
            "r = rlm_query('child', context=['a', 'bb'])\nout = r + str('secret_var' in dir())"
        )

    from conftest import FakeOpenAIServer, by_model, echo_sub

    with FakeOpenAIServer(by_model({"root": root, "sub": echo_sub})) as server:
        rlm = RLM(
            "openai/root",
            "openai/sub",
            server.base_url,
            api_key="k",
            child_root_model="openai/root",
            retries=0,
        )
        result = rlm.run("parent context", "parent")
    assert result.answer == "list2False"


def test_unknown_cost_is_none_not_zero(fake: Any) -> None:
    result, _, _ = fake([repl("FINAL(llm_query('x'))")])
    assert result.cost_usd is None
    run, nodes = stored(result.run_id)
    assert run.cost_usd is None
    assert all(n.cost_usd is None for n in nodes if n.kind in ("lm", "llm_query"))


def test_model_code_errors_are_fed_back(fake: Any) -> None:
    result, _, root = fake([repl("1 / 0"), repl("FINAL('recovered')")])
    assert result.answer == "recovered"
    assert "ZeroDivisionError" in root.seen[1][-1]["content"]
    _, nodes = stored(result.run_id)
    code = next(n for n in nodes if n.kind == "code")
    assert code.status == "error" and "ZeroDivisionError" in code.error


def test_sub_call_provider_error_reaches_the_code_as_an_exception(fake: Any) -> None:
    code = (
        "try:\n    llm_query('x')\nexcept RuntimeError as e:\n    FINAL('caught: ' + str(e)[:40])"
    )
    result, _, _ = fake([repl(code)], sub=lambda body: FakeReply(status=500))
    assert result.status == "ok"
    assert result.answer.startswith("caught: llm_query failed")
    _, nodes = stored(result.run_id)
    assert next(n for n in nodes if n.kind == "llm_query").status == "error"


def test_root_provider_error_ends_the_run_with_a_clear_error(fake: Any) -> None:
    result, _, _ = fake([FakeReply(status=401)])
    assert result.status == "error"
    assert "openai/root" in result.error and "\n" not in result.error
    run, nodes = stored(result.run_id)
    assert run.status == "error"
    assert all(n.status != "running" for n in nodes)


def test_api_key_is_never_written(fake: Any, traces_dir: Any) -> None:
    result, _, _ = fake([repl("print(llm_query('x'))"), repl("FINAL('ok')")])
    assert result.status == "ok"
    for path in traces_dir.rglob("*"):
        if path.is_file():
            assert b"sk-fake" not in path.read_bytes(), path


def test_secrets_in_the_parent_environment_are_invisible_to_model_code(
    fake: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    code = "import os\nFINAL(str(sorted(os.environ)) + open('/proc/self/environ').read())"
    result, _, _ = fake([repl(code)])
    assert "sk-parent-secret" not in result.answer
    assert "OPENAI_API_KEY" not in result.answer


def test_a_text_final_holding_an_expression_is_evaluated_in_the_repl(fake: Any) -> None:
    replies = [repl("code = 'A-7'"), 'Done.\nFINAL("The code is " + code)']
    result, _, _ = fake(replies)
    assert result.answer == "The code is A-7"
    prose, _, _ = fake([repl("x = 1"), "FINAL(The code is A-7)"])
    assert prose.answer == "The code is A-7"


def test_small_models_get_the_short_prompt_and_repeated_code_is_pointed_out(fake: Any) -> None:
    replies = [repl("print(1)"), repl("print(1)"), repl("FINAL('x')")]
    result, _, root = fake(replies, prompt="small")
    assert "Try a different search" in root.seen[2][-1]["content"]
    assert "Try a different search" not in root.seen[1][-1]["content"]
    assert root.seen[0][0]["content"].startswith("You answer a question about a long text")
    assert stored(result.run_id)[1][0].meta["prompt"] == "rlm-small-v2"
    full, _, root = fake([repl("FINAL('x')")])
    assert stored(full.run_id)[1][0].meta["prompt"] == "rlm-v1"
    assert "How to work well" in root.seen[0][0]["content"]


def test_small_models_see_worked_examples_in_the_format_of_their_own_turns(fake: Any) -> None:
    result, _, root = fake(
        [repl("print('the code is 7')"), "FINAL(7)"], prompt="small", question="What is the code?"
    )
    first, second = root.seen[0], root.seen[1]
    assert (
        first[-1]["content"].startswith("The context is loaded")
        and "What is the code?" in (first[-1]["content"])
    )
    solved = [m for m in first[1:-1] if m["role"] == "assistant"]
    assert [m["content"] for m in solved if m["content"].startswith("FINAL(")] == [
        "FINAL(5937)",
        "FINAL(7441)",
    ]
    # the examples' feedback is what a real turn gets back, word for word after the output
    real_tail = second[-1]["content"].split("REPL variables:")[1].split("\n", 1)[1]
    example_feedback = [m["content"] for m in first[1:-1] if m["role"] == "user"]
    assert any(
        real_tail.replace("What is the code?", "How many orders were shipped to Norway?") in f
        for f in example_feedback
    )
    # the trace keeps them: the first lm node's input is every message that was sent
    lm = next(n for n in stored(result.run_id)[1] if n.kind == "lm")
    assert len(json.loads(lm.input)) == len(first)
    assert result.answer == "7"
    _, _, big = fake([repl("FINAL('x')")])
    assert [m["role"] for m in big.seen[0]] == ["system", "user"]


def test_a_small_models_guess_after_a_search_that_found_nothing_is_refused(fake: Any) -> None:
    search = repl("import re\nfor m in re.finditer('opens the vault', context):\n    print(m)")
    found = repl("print(context[context.find('vault') - 20:])")
    context = "filler " * 50 + "The secret code for the vault is 48213."
    replies = [search, "FINAL(12345)", found, "FINAL(48213)"]
    result, _, root = fake(replies, context, prompt="small")
    assert result.answer == "48213"
    assert "Your code found nothing" in root.seen[1][-1]["content"]
    assert "Not accepted: your last search found nothing" in root.seen[2][-1]["content"]
    assert "found nothing" not in root.seen[3][-1]["content"]
    assert stored(result.run_id)[1][0].meta["refused_guesses"] == [2]
    # larger models are trusted with their answer: the full prompt takes it as it is
    trusted, _, _ = fake(replies, context)
    assert trusted.answer == "12345"
    # a variable computed by a cell that printed nothing is an answer, not a guess
    quiet = repl("import re\nanswer = re.search(r'vault is (\\d+)', context).group(1)")
    for final in ("FINAL_VAR(answer)", "FINAL(answer)"):
        computed, _, _ = fake([quiet, final], context, prompt="small")
        assert computed.answer == "48213"
