"""What the Explorer computes from a trace: step order, rebuilt messages, positions, table rows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rlm_core import RLM, TraceStore
from rlm_core.analysis.views import (
    ambiguity_notes,
    clip,
    describe_spans,
    lm_messages,
    node_label,
    nodes_up_to,
    one_line,
    slice_with_margin,
    span_description,
    step_index,
    step_order,
)
from rlm_core.engine.prompts import SYSTEM_PROMPT
from rlm_core.types import Node

NEEDLE = "The secret code is 4471."


def needle_text(lines: int = 3000) -> str:
    """Numbered filler (not periodic, so provenance finds one place for each slice)."""
    filler = [f"Line {i}: nothing to see here." for i in range(lines)]
    return " ".join([*filler[: lines // 2], NEEDLE, *filler[lines // 2 :]])


def lm(node_id: str, parent: str, before: int, *messages: dict[str, Any]) -> Node:
    return Node(
        node_id,
        "r",
        parent,
        "lm",
        0,
        1,
        input=json.dumps(list(messages)),
        meta={"messages_before": before},
    )


def msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


# ---- order and steps -----------------------------------------------------------------------


def test_step_order_is_node_id_order() -> None:
    nodes = [Node(i, "r", None, "code", 0, 0) for i in ("b2", "a1", "c3")]
    assert step_order(nodes) == ["a1", "b2", "c3"]
    assert step_index(["a1", "b2", "c3"], "b2") == 1
    assert step_index(["a1", "b2"], "zz") == 0 and step_index(["a1"], None) == 0
    assert [n.node_id for n in nodes_up_to(nodes, "b2")] == ["b2", "a1"]


# ---- messages of an lm call ----------------------------------------------------------------


def test_lm_messages_rebuilds_the_full_list_per_rlm() -> None:
    first = lm("n1", "run", 0, msg("system", "S"), msg("user", "U1"))
    second = lm("n3", "run", 2, msg("assistant", "A1"), msg("user", "U2"))
    child = lm("n4", "child", 0, msg("system", "child S"), msg("user", "child U"))
    third = lm("n5", "run", 4, msg("assistant", "A2"), msg("user", "U3"))
    nodes = [first, second, child, third]
    assert [m["content"] for m in lm_messages(nodes, third)] == [
        "S",
        "U1",
        "A1",
        "U2",
        "A2",
        "U3",
    ]
    assert [m["content"] for m in lm_messages(nodes, second)] == ["S", "U1", "A1", "U2"]
    assert [m["content"] for m in lm_messages(nodes, child)] == ["child S", "child U"]


def test_lm_messages_marks_missing_and_unreadable_deltas() -> None:
    broken = Node("n1", "r", "run", "lm", 0, 1, input='[{"role": "sys', meta={})
    later = lm("n3", "run", 4, msg("assistant", "A"))
    messages = lm_messages([broken, later], later)
    assert messages[0]["role"] == "(missing)" and "not valid JSON" in messages[0]["content"]
    assert messages[1]["role"] == "(missing)" and "3 message(s)" in messages[1]["content"]
    assert messages[-1] == msg("assistant", "A")


# ---- positions -----------------------------------------------------------------------------


def test_span_description_of_a_string_context() -> None:
    context = "x" * 1_000_000
    assert span_description([[5_000, 10_000]], context) == (
        "chars 5,000–10,000 of 1,000,000 (0.5%–1.0%)"
    )
    two = span_description([[0, 10], [999_000, 1_000_000]], context)
    assert "2 range(s), 1,010 chars" in two and "(99.9%–100.0%)" in two
    assert span_description([], context).startswith("No part of the original context")


def test_span_description_names_parts_of_dict_and_list_contexts() -> None:
    context = {"a.txt": "a" * 100, "b.md": "b" * 50}
    # parts are joined by a blank line: b.md starts at 102
    assert span_description([[110, 120]], context).endswith("in part 'b.md' (chars 8–18 of 50)")
    assert "in part 'a.txt' (chars 0–100 of 100)" in span_description([[0, 100]], context)
    assert "across parts 'a.txt' to 'b.md'" in span_description([[90, 110]], context)
    assert "in part '1'" in span_description([[8, 9]], ["xxxx", "yyyy"])
    assert describe_spans([[0, 1]], 0) == ["chars 0–1 of 0 (0.0%–0.0%)"]


def test_ambiguous_runs_are_named_with_how_often_they_occur() -> None:
    flags = [
        {"start": 400, "end": 824, "occurrences": 12, "places": [400, 1400]},
        {"start": 90, "end": 150, "occurrences": None, "places": []},
    ]
    node = Node("n", "r", "c", "llm_query", 1, 1, meta={"ambiguous": flags})
    first, second = ambiguity_notes(node, 2_000)
    assert first.startswith("424 chars of it are not placed: this text occurs 12 times")
    assert "chars 400–824 (20.0%)" in first
    assert "occurs more than once" in second
    assert ambiguity_notes(Node("m", "r", "c", "llm_query", 1, 1), 2_000) == []


def test_slice_with_margin_clamps_to_the_text() -> None:
    text = "0123456789"
    assert slice_with_margin(text, 4, 6, 2) == ("23", "45", "67")
    assert slice_with_margin(text, 0, 3, 5) == ("", "012", "34567")
    assert slice_with_margin(text, 8, 50, 5) == ("34567", "89", "")
    assert slice_with_margin(text, 20, 30, 2) == ("89", "", "")


def test_clip_reports_the_full_length() -> None:
    part = clip("abcdef", 4)
    assert part.text == "abcd" and part.total == 6 and part.clipped
    assert not clip(None, 4).clipped


# ---- labels ----------------------------------------------------------------------------------


def test_node_labels_are_plain_words() -> None:
    nodes = [
        Node("n1", "r", None, "run", 0, 0, status="ok", input="Q?", tokens_in=5, tokens_out=1),
        Node("n2", "r", "n1", "code", 0, 1, status="error", code="print(1)", error="Boom"),
        Node("n3", "r", "n2", "llm_query", 1, 2, status="ok", output="Found IT", cost_usd=0.5),
    ]
    assert one_line("  a\n b  " * 3, 7) == "a b a …"
    assert node_label(nodes[2], 3) == "step 3: llm_query (depth 1, ok)"
    odd = Node("n4", "r", None, "![x](http://e/x.png)", 0, 0, meta={"batch_index": "<b>"})  # type: ignore[arg-type]
    assert "![" not in node_label(odd, 4) and "](" not in node_label(odd, 4)
    assert "<b>" not in node_label(odd, 4)


# ---- a real demo run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Node], Any]:
    traces = tmp_path_factory.mktemp("demo_traces")
    context = {"intro.txt": needle_text(1000).replace(NEEDLE, ""), "vault.md": needle_text()}
    result = RLM("demo/root", "demo/sub", traces_dir=traces).run(
        context, "What is the secret code?"
    )
    assert result.status == "ok" and result.answer and "4471" in result.answer
    store = TraceStore(traces)
    try:
        nodes = [store.node(n.node_id) for n in store.nodes(result.run_id)]
        return [n for n in nodes if n is not None], store.context(result.run_id)
    finally:
        store.close()


def test_demo_lm_messages_are_what_the_model_was_sent(demo_run: tuple[list[Node], Any]) -> None:
    nodes, _ = demo_run
    calls = [n for n in nodes if n.kind == "lm"]
    assert len(calls) >= 3
    last = calls[-1]
    messages = lm_messages(nodes, last)
    assert len(messages) == last.meta["messages_before"] + len(json.loads(last.input or ""))
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(SYSTEM_PROMPT[:60])
    assert "What is the secret code?" in messages[1]["content"]
    # every earlier response comes back as an assistant message, in order
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    assert assistant == [c.output for c in calls[:-1]]


def test_demo_slice_positions_point_at_the_needle(demo_run: tuple[list[Node], Any]) -> None:
    nodes, context = demo_run
    subs = [n for n in nodes if n.kind == "llm_query" and NEEDLE in (n.output or "")]
    assert subs, "the sub call that found the needle"
    spans = subs[0].context_spans
    assert spans
    text = span_description(spans, context)
    assert "in part 'vault.md'" in text and "of 1" in text
    from rlm_core.context import flatten

    flat, _ = flatten(context)
    pieces = ["".join(slice_with_margin(flat, s, e, 0)) for s, e in spans]
    assert any(NEEDLE in p for p in pieces)
    assert all(p in (subs[0].input or "") for p in pieces)
    assert step_order(nodes)[0] == nodes[0].run_id
