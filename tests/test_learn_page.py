"""The Learn page: pattern heuristics of the narration, the bundled example runs, and a full
walkthrough under AppTest."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rlm_core import TraceStore
from rlm_core.analysis.narrate import (
    EXAMPLES,
    LEARN_DIR,
    code_patterns,
    example_run_id,
    narrate,
    pair_outcome,
)
from rlm_core.evaluate.scoring import score_for
from rlm_core.exchange.jsonl import FORMAT
from rlm_core.types import Node

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "3_Learn.py")


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


# ---- pattern heuristics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("print(len(context))\nprint(context[:1000])", ["probe"]),
        ("print(type(context)); SHOW_VARS()", ["probe"]),
        ("import re\nhits = re.findall(r'secret \\d+', context)\nprint(hits)", ["filter"]),
        ("lines = [l for l in context.split('\\n') if 'ERROR' in l]", ["filter"]),
        (
            "keep = [l for l in lines if 'x' in line]\nfor line in lines:\n  if 'k' in line: pass",
            ["filter"],
        ),
        (
            "size = 10000\nchunks = [context[i:i + size] for i in range(0, len(context), size)]",
            ["chunk"],
        ),
        ("answers = llm_query_batched([f'Q? {c}' for c in chunks])", ["map"]),
        ("for c in chunks:\n    out.append(llm_query(f'Find it: {c}'))", ["map"]),
        ("ok = llm_query(f'Verify that {answer} is right given: {snippet}')", ["verify"]),
        ("res = rlm_query_batched([q] * len(parts), contexts=parts)", ["recurse"]),
        ("res = rlm_query('summarise', context=part)", ["recurse"]),
        ("answer = max(set(answers), key=answers.count)\nFINAL_VAR('answer')", ["reduce"]),
        ("FINAL('42')", []),
        ("x = 1 + 1", []),
    ],
)
def test_code_patterns(code: str, expected: list[str]) -> None:
    assert code_patterns(code) == expected


def test_sub_calls_confirm_map_and_recurse() -> None:
    batch = [Node(f"s{i}", "r", "c", "llm_query", 1, i, meta={"batch_size": 3}) for i in range(3)]
    assert code_patterns("results = ask_all(pieces)", batch) == ["map"]
    child = [Node("k", "r", "c", "rlm_query", 1, 1)]
    assert code_patterns("llm_query_batched(x)", child) == ["recurse"]


# ---- the bundled example runs --------------------------------------------------------------


def bundled_nodes(name: str) -> list[Node]:
    lines = (LEARN_DIR / name).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["format"] == FORMAT
    return [Node.from_dict(d) for d in map(json.loads, lines[1:]) if "node_id" in d]


def test_bundled_examples_show_every_pattern_and_narrate_safely() -> None:
    seen: set[str] = set()
    for name in EXAMPLES:
        assert example_run_id(LEARN_DIR / name)
        nodes = bundled_nodes(name)
        root = next(n for n in nodes if n.kind == "run" and n.parent_id is None)
        total = int(root.meta["context_chars"])
        for n in nodes:
            step = narrate(n, nodes, total)
            seen.update(step.patterns)
            # narration is markdown we write: no node text, no HTML
            assert "<" not in step.text and "](" not in step.text
            assert step.title and step.text
    assert {"probe", "filter", "chunk", "map", "reduce", "recurse"} <= seen


def test_narration_names_dropped_results_and_child_runs() -> None:
    nodes = bundled_nodes("recursive.jsonl")
    child = next(n for n in nodes if n.kind == "run" and n.parent_id is not None)
    assert "child RLM" in narrate(child, nodes, 200_040).title
    inner = next(n for n in nodes if n.kind == "code" and n.parent_id == child.node_id)
    assert "inside a child RLM" in narrate(inner, nodes, 200_040).title
    sub = next(n for n in nodes if n.kind == "llm_query")
    dropped = Node(sub.node_id, sub.run_id, sub.parent_id, "llm_query", 2, 9, meta={"used_by": []})
    assert "dropped" in narrate(dropped, [dropped], 200_040).text


# ---- the page ------------------------------------------------------------------------------


def test_walkthrough_from_start_to_summary(traces_dir: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "Recursive Language Model" in at.markdown[0].value
    store = TraceStore(traces_dir)
    try:
        assert len(store.list_runs()) == len(EXAMPLES)  # imported on first open
    finally:
        store.close()
    count = len(bundled_nodes("needle.jsonl"))
    titles, badges = [], set()
    for step in range(count):
        titles.append(at.subheader[0].value)
        badges.update(
            re.findall(r"badge\[(pattern: \w+)\]", " ".join(m.value for m in at.markdown))
        )
        if step == 2:  # the probe cell: the 500 characters it read and printed are highlighted
            body = str(at.get("html")[0].proto.body)
            assert 'class="rlm-mark rlm-shown"' in body and "range 1 of 1: chars 0–500" in str(
                [t.value for t in at.text]
            )
            assert any("def" not in c.value and "context" in c.value for c in at.code)
        if step < count - 1:
            at.button(key="learn_next").click().run()
            assert not at.exception
    assert titles[0].startswith("The run starts") and titles[-1] == "The answer"
    assert {"pattern: probe", "pattern: filter", "pattern: map", "pattern: reduce"} <= badges
    assert at.button(key="learn_next").disabled
    assert any("You reached the end" in s.value for s in at.success)
    assert any("Why that beats stuffing the window" in m.value for m in at.markdown)

    at.radio(key="learn_example").set_value(example_run_id(LEARN_DIR / "recursive.jsonl")).run()
    assert not at.exception
    assert at.subheader[0].value.startswith("The run starts")

    # a second visit finds the examples stored and imports nothing again
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error


def test_record_writes_importable_exports(tmp_path: Path) -> None:
    from rlm_core.exchange.jsonl import import_file
    from scripts.record_learn import record

    paths = record(tmp_path / "learn")
    assert [p.name for p in paths] == list(EXAMPLES)
    store = TraceStore(tmp_path / "traces")
    try:
        for p in paths:
            import_file(store, p)
            run_id = example_run_id(p)
            found = store.get_run(run_id) if run_id else None
            assert found is not None and found.status == "ok"
    finally:
        store.close()


def test_pair_outcome_says_who_found_the_answer_and_when_both_missed() -> None:
    assert pair_outcome([("RLM", 1.0), ("RAG (BM25)", 0.0)]) == (
        "RAG (BM25) missed the expected answer; RLM found it."
    )
    assert (
        pair_outcome([("RLM", 1.0), ("summarize", 1.0)]) == "Both runs found the expected answer."
    )
    assert (pair_outcome([("RLM", 0.0), ("RAG (BM25)", 0.0)]) or "").startswith("Both runs missed")
    assert pair_outcome([("RLM", None), ("RAG (BM25)", 1.0)]) is None
    assert score_for("Q?", ("Q?",), ("48213",), (), "The code is 48213.") == 1.0
    assert score_for("Other?", ("Q?",), ("48213",), (), "48213") is None
