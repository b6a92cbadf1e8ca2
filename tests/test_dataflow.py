"""Data flow: which sub-call results reached which variables and the final answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import repl, stored

from rlm_core.repl import ContextRef, Sandbox
from rlm_core.types import Node


def by_kind(nodes: list[Node], kind: str) -> list[Node]:
    return sorted((n for n in nodes if n.kind == kind), key=lambda n: n.node_id)


def test_llm_query_to_variable_to_final_var(fake: Any) -> None:
    code = "note = llm_query('Summarise: ' + context[:20])\nanswer = 'Summary: ' + note"
    result, _, _ = fake([repl(code), repl("FINAL_VAR('answer')")], context="x" * 100)
    assert result.answer.startswith("Summary: sub saw")
    _, nodes = stored(result.run_id)
    (sub,) = by_kind(nodes, "llm_query")
    first, _second = by_kind(nodes, "code")
    assert first.meta["assignments"] == {"note": [sub.node_id], "answer": [sub.node_id]}
    (final,) = by_kind(nodes, "final")
    assert final.meta["var"] == "answer"
    assert final.meta["sources"] == [sub.node_id]
    assert sub.meta["used_by"] == ["answer", "note"]


def test_batched_results_to_list_to_join_to_final(fake: Any) -> None:
    code = (
        "chunks = [context[i:i + 50] for i in range(0, 200, 50)]\n"
        "answers = llm_query_batched([f'Find it in: {c}' for c in chunks])"
    )
    result, _, _ = fake([repl(code), repl("FINAL('\\n'.join(answers))")], context="y" * 200)
    assert result.status == "ok"
    _, nodes = stored(result.run_id)
    subs = sorted(by_kind(nodes, "llm_query"), key=lambda n: n.meta["batch_index"])
    in_order = [n.node_id for n in subs]
    first, second = by_kind(nodes, "code")
    assert first.meta["assignments"] == {"answers": in_order}
    assert second.meta["assignments"] == {}  # nothing new: `answers` did not change
    (final,) = by_kind(nodes, "final")
    assert final.meta["var"] is None and final.meta["sources"] == in_order
    assert all(n.meta["used_by"] == ["answers"] for n in subs)


def test_a_dropped_result_is_used_by_nobody(fake: Any) -> None:
    code = "llm_query('first question, answer ignored')\nkept = llm_query('second question')"
    result, _, _ = fake([repl(code), repl("FINAL(kept)")])
    _, nodes = stored(result.run_id)
    dropped, kept = sorted(by_kind(nodes, "llm_query"), key=lambda n: n.seq)
    assert dropped.meta["used_by"] == []
    assert kept.meta["used_by"] == ["kept"]
    assert by_kind(nodes, "final")[0].meta["sources"] == [kept.node_id]


def test_result_used_only_in_final_is_a_source_not_a_variable(fake: Any) -> None:
    result, _, _ = fake([repl("FINAL(llm_query('just answer'))")])
    _, nodes = stored(result.run_id)
    (sub,) = by_kind(nodes, "llm_query")
    assert sub.meta["used_by"] == []
    assert by_kind(nodes, "final")[0].meta["sources"] == [sub.node_id]


def test_text_final_repeating_a_result_names_it(fake: Any) -> None:
    def sub(body: dict[str, Any]) -> str:
        return "The capital is Paris."

    replies = [repl("print(llm_query('capital?'))"), "It said so.\nFINAL(The capital is Paris.)"]
    result, _, _ = fake(replies, sub=sub)
    assert result.answer == "The capital is Paris."
    _, nodes = stored(result.run_id)
    (sub_node,) = by_kind(nodes, "llm_query")
    assert by_kind(nodes, "final")[0].meta["sources"] == [sub_node.node_id]


def test_sandbox_reports_call_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("some context")
    seen: list[dict[str, Any]] = []

    def handler(fn: str, args: dict[str, Any]) -> Any:
        seen.append(args)
        if fn.endswith("_batched"):
            return [f"answer number {i}" for i in range(len(args["prompts"]))]
        return f"single answer to {args['prompt']}"

    with Sandbox(ContextRef(str(path), "text"), handler, call_ids=True) as sb:
        code = "a = llm_query('q')\nb = llm_query_batched(['x', 'y'])\nc = [b[1], 'short', 7]"
        result = sb.execute(code, timeout_s=10)
        assert [s["_call_id"] for s in seen] == ["1.1", "1.2"]
        assert result.assignments == {"a": ["1.1"], "b": ["1.2/0", "1.2/1"], "c": ["1.2/1"]}
        again = sb.execute("c.append(a)\nd = 1", timeout_s=10)
        assert again.assignments == {"c": ["1.1", "1.2/1"]}
        final = sb.execute("FINAL(a + ' and ' + b[0])", timeout_s=10).final
        assert final is not None and final["sources"] == ["1.1", "1.2/0"]
        # a restarted worker numbers calls from 1 again: keys stay unique by generation
        sb.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout_s=10)
        result = sb.execute("e = llm_query('after')", timeout_s=10)
        assert result.assignments == {"e": ["2.1"]}


def test_an_answer_its_prompt_already_holds_is_not_found_in_the_prompts(fake: Any) -> None:
    """The template says "reply NOT FOUND"; the answers that do are in `answers`, not in
    `prompts` (which held that text before any answer came back)."""
    code = (
        "prompts = [f'Reply NOT FOUND if it is absent.\\n{context[i:i + 30]}' for i in (0, 30)]\n"
        "answers = llm_query_batched(prompts)\nkept = [a for a in answers if a != 'x']"
    )
    result, _, _ = fake([repl(code), repl("FINAL('done')")], "q" * 60, sub=lambda b: "NOT FOUND")
    _, nodes = stored(result.run_id)
    subs = by_kind(nodes, "llm_query")
    assert by_kind(nodes, "code")[0].meta["assignments"] == {
        "answers": [n.node_id for n in sorted(subs, key=lambda n: n.meta["batch_index"])],
        "kept": [n.node_id for n in sorted(subs, key=lambda n: n.meta["batch_index"])],
    }
    assert all(n.meta["used_by"] == ["answers", "kept"] for n in subs)
