"""Failure linter: each rule fires on a trace built to trigger it, not on a clean one."""

from __future__ import annotations

from typing import Any

from conftest import repl, stored

from rlm_core.analysis.lint import Finding, lint
from rlm_core.types import Node

_seq = iter(range(10_000))


def mk(kind: Any, parent: str | None = "R", **fields: Any) -> Node:
    """Nodes get increasing ids in creation order, like the engine's time-sortable ids."""
    n = next(_seq)
    depth = 1 if kind in ("llm_query", "rlm_query") else 0
    node_id = fields.pop("node_id", f"{n:06d}")
    return Node(
        node_id=node_id,
        run_id="R",
        parent_id=parent,
        kind=kind,
        depth=depth,
        seq=n,
        status=fields.pop("status", "ok"),
        **fields,
    )


def run_node(**meta: Any) -> Node:
    return mk("run", None, node_id="R", meta=meta)


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def clean_trace() -> list[Node]:
    """Reads the context, uses its sub-call, answers: nothing to report."""
    code = mk(
        "code", node_id="c1", context_spans=[[0, 100]], model_view="found it", meta={"iteration": 1}
    )
    sub = mk(
        "llm_query",
        "c1",
        model="openai/gpt-4o-mini",
        input="look at this",
        output="an answer",
        context_spans=[[0, 50]],
        meta={"used_by": ["x"]},
    )
    final = mk("final", meta={"sources": [sub.node_id]})
    return [run_node(), mk("lm"), code, sub, final]


def test_clean_trace_has_no_findings() -> None:
    assert lint(clean_trace(), ["needle"], "a needle in " + "x" * 90) == []


def test_final_without_reading_the_context() -> None:
    nodes = [run_node(), mk("lm"), mk("code", model_view=""), mk("final")]
    (finding,) = lint(nodes)
    assert finding.rule == "final_unread" and finding.node_ids == [nodes[-1].node_id]
    # reading after the final does not count
    nodes.append(mk("code", context_spans=[[0, 5]]))
    assert rules(lint(nodes)) == ["final_unread"]


def test_final_after_only_a_sub_call_read_the_context_is_fine() -> None:
    code = mk("code", node_id="c9")
    sub = mk("llm_query", "c9", input="p", output="o", context_spans=[[0, 5]])
    assert lint([run_node(), code, sub, mk("final", meta={"sources": [sub.node_id]})]) == []


def test_unused_results() -> None:
    nodes = clean_trace()
    dropped = mk("llm_query", "c1", input="other", output="ignored text", meta={"used_by": []})
    nodes.insert(-1, dropped)
    (finding,) = lint(nodes)
    assert finding.rule == "unused_result" and finding.node_ids == [dropped.node_id]
    # a result that only reached the final answer was used
    nodes[-1].meta["sources"].append(dropped.node_id)
    assert lint(nodes) == []


def test_repeated_identical_sub_calls() -> None:
    nodes = clean_trace()
    again = mk(
        "llm_query",
        "c1",
        model="openai/gpt-4o-mini",
        input="look at this",
        output="an answer",
        meta={"used_by": ["y"]},
    )
    nodes.insert(-1, again)
    (finding,) = lint(nodes)
    assert finding.rule == "repeated_call" and finding.node_ids == [nodes[3].node_id, again.node_id]
    again.input = "a different prompt"
    assert lint(nodes) == []


def test_prompt_larger_than_the_sub_models_window() -> None:
    big = "x" * 4 * 130_000  # ~130k tokens; gpt-4o-mini takes 128k
    nodes = clean_trace()
    nodes[3].input = big
    (warn,) = lint(nodes)
    assert (warn.rule, warn.severity) == ("prompt_too_large", "warning")
    nodes[3].status, nodes[3].error = "error", "ContextWindowExceededError: too long\nmore"
    (err,) = lint(nodes)
    assert err.severity == "error" and "ContextWindowExceededError: too long" in err.message
    nodes[3].input = "x" * 4 * 100_000
    nodes[3].status = "ok"
    assert lint(nodes) == []


def test_same_code_error_in_two_turns() -> None:
    tb = "Traceback (most recent call last):\n  File \"<cell 1>\"\nKeyError: 'name'\n"
    nodes = clean_trace()
    first = mk("code", error=tb, model_view="a", meta={"iteration": 2})
    second = mk(
        "code", error=tb.replace("<cell 1>", "<cell 2>"), model_view="b", meta={"iteration": 3}
    )
    nodes[3:3] = [first, second]
    (finding,) = lint(nodes)
    assert finding.rule == "repeated_error" and "KeyError: 'name'" in finding.message
    assert finding.node_ids == [first.node_id, second.node_id]
    second.error = "ValueError: other"
    assert lint(nodes) == []


def test_same_output_twice_in_a_row() -> None:
    nodes = clean_trace()
    nodes.insert(3, mk("code", model_view="found it", meta={"iteration": 2}))
    (finding,) = lint(nodes)
    assert finding.rule == "no_progress" and len(finding.node_ids) == 2
    nodes[3].model_view = "something new"
    assert lint(nodes) == []


def test_limit_hit() -> None:
    nodes = clean_trace()
    nodes[0].meta["limit"] = "max_tokens"
    blocked = mk("llm_query", "c1", status="limit", error="not called: limit")
    nodes.insert(-1, blocked)
    (finding,) = lint(nodes)
    assert finding.rule == "limit_hit" and "max_tokens" in finding.message
    assert finding.node_ids == ["R", blocked.node_id]


def test_ignored_text_final() -> None:
    nodes = clean_trace()
    nodes[0].meta["ignored_text_finals"] = [1, 3]
    (finding,) = lint(nodes)
    assert finding.rule == "ignored_text_final" and "1, 3" in finding.message
    nodes[0].meta["refused_guesses"] = [2]
    refused = {f.rule: f for f in lint(nodes)}["refused_guess"]
    assert "turn(s) 2" in refused.message and refused.node_ids == ["R"]


def test_needle_no_model_call_saw() -> None:
    text = "x" * 200 + "NEEDLE" + "y" * 20
    nodes = clean_trace()
    nodes[2].context_spans = [[0, 300]]  # code scanned it, no model saw it
    (finding,) = lint(nodes, ["NEEDLE"], text)
    assert finding.rule == "needle_unseen" and finding.node_ids == ["c1"]
    assert "only code read it" in finding.message
    nodes[2].meta["shown_spans"] = [[190, 210]]  # printed to the root model: seen
    assert lint(nodes, ["NEEDLE"], text) == []
    assert rules(lint(nodes, ["absent"], text)) == ["needle_absent"]
    assert lint(nodes, ["NEEDLE"]) == []  # no context text: needles are not checked


def test_findings_come_most_severe_first() -> None:
    nodes = [run_node(ignored_text_finals=[1]), mk("final")]
    assert rules(lint(nodes)) == ["final_unread", "ignored_text_final"]


def test_engine_trace_feeds_the_linter(fake: Any) -> None:
    context = "filler " * 500 + "The code word is ORCHID." + " filler" * 500
    lazy, _, _ = fake([repl("llm_query('hello there')\nFINAL('no idea')")], context)
    _, nodes = stored(lazy.run_id)
    found = {f.rule: f for f in lint(nodes, ["ORCHID"], context)}
    assert set(found) == {"final_unread", "unused_result", "needle_unseen", "blind_subcall"}
    sub = next(n for n in nodes if n.kind == "llm_query")
    assert found["unused_result"].node_ids == [sub.node_id]

    code = "at = context.find('code word')\nword = llm_query(context[at - 10:at + 40])"
    careful, _, _ = fake([repl(code), repl("FINAL_VAR('word')")], context)
    _, nodes = stored(careful.run_id)
    assert lint(nodes, ["ORCHID"], context) == []
