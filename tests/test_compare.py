"""Aligning two runs (iterations, cells, sub-calls by span overlap) and the Compare page."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.analysis.compare import align, compare_runs, summary
from rlm_core.analysis.matching import SUB_MIN, _sub_score, match_subs, similarity, span_overlap
from rlm_core.engine.replay import fork_run
from rlm_core.types import Node, RunSummary, new_id

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "4_Compare.py")
_ids = itertools.count()


class Run:
    """A hand-built run tree; node ids grow in creation order, like real ones."""

    def __init__(self, question: str = "Q?") -> None:
        self.nodes: list[Node] = []
        self.root = self.add("run", None, input=question)

    def add(self, kind: str, parent: Node | None, **fields: Any) -> Node:
        node_id = f"{next(_ids):08d}"
        node = Node(
            node_id=node_id,
            run_id="r",
            kind=kind,  # type: ignore[arg-type]
            parent_id=parent.node_id if parent else None,
            depth=0,
            seq=len(self.nodes),
            status="ok",
            **fields,
        )
        self.nodes.append(node)
        return node

    def turn(self, it: int, response: str, *cells: str) -> list[Node]:
        self.add("lm", self.root, output=response, meta={"iteration": it})
        return [
            self.add(
                "code", self.root, code=c, stdout=f"ran {c}", meta={"iteration": it, "block": k}
            )
            for k, c in enumerate(cells, 1)
        ]

    def sub(self, cell: Node, prompt: str, answer: str, spans: list[list[int]], i: int) -> Node:
        meta = {"batch": "b", "batch_index": i, "batch_size": 3}
        return self.add(
            "llm_query", cell, input=prompt, output=answer, context_spans=spans, meta=meta
        )

    def final(self, answer: str) -> None:
        self.add("final", self.root, output=answer)


def three_turns(second_code: str = "hits = find(text)\nprint(hits)\nx = 1") -> Run:
    run = Run()
    run.turn(1, "Look first.\n```repl\nprint(len(context))\n```", "print(len(context))")
    run.turn(2, "Search.\n```repl\nhits\n```", second_code)
    (cell,) = run.turn(3, "Ask the sub model.\n```repl\nllm_query_batched(chunks)\n```", "ask")
    for i, (lo, hi) in enumerate([(0, 100), (100, 200), (200, 300)]):
        run.sub(cell, f"chunk {lo}", f"answer {lo}", [[lo, hi]], i)
    run.final("42")
    return run


def test_identical_runs_have_no_divergence() -> None:
    a, b = three_turns(), three_turns()
    cmp = compare_runs(a.nodes, b.nodes)
    assert cmp.first_divergence is None and cmp.divergence is None
    assert len(cmp.pairs) == len(a.nodes) and all(p.same for p in cmp.pairs)


def test_one_edited_code_cell_is_the_first_divergence() -> None:
    a, b = three_turns(), three_turns("hits = find(text, 'other')\nprint(hits)\nx = 1")
    cmp = compare_runs(a.nodes, b.nodes)
    pair = cmp.divergence
    assert pair is not None and pair.kind == "code" and pair.matched
    assert pair.where == "iteration 2 · cell 1"
    assert pair.differences == ("code", "output")
    assert all(p.same for p in cmp.pairs[: cmp.first_divergence])
    assert all(p.matched for p in cmp.pairs)  # the edit did not break the alignment


def test_sub_calls_pair_by_the_spans_they_read_even_reordered() -> None:
    a = three_turns()
    b = Run()
    b.turn(1, "Look first.\n```repl\nprint(len(context))\n```", "print(len(context))")
    b.turn(2, "Search.\n```repl\nhits\n```", "hits = find(text)\nprint(hits)\nx = 1")
    (cell,) = b.turn(3, "Ask the sub model.\n```repl\nllm_query_batched(chunks)\n```", "ask")
    # the same three calls in another order, with prompts worded differently
    for i, (lo, hi) in enumerate([(200, 300), (0, 100), (100, 200)]):
        b.sub(cell, f"please read part {i}", f"answer {lo}", [[lo, hi]], i)
    b.final("42")
    cmp = compare_runs(a.nodes, b.nodes)
    subs = [p for p in cmp.pairs if p.kind == "llm_query"]
    assert len(subs) == 3 and all(p.matched for p in subs)
    assert all(p.left.context_spans == p.right.context_spans for p in subs)  # type: ignore[union-attr]
    assert all(p.differences == ("prompt",) for p in subs)
    # without spans, prompt similarity decides
    left = Run()
    (lc,) = left.turn(1, "r", "c")
    right = Run()
    (rc,) = right.turn(1, "r", "c")
    left.sub(lc, "Summarise the chapter about whales", "w", [], 0)
    left.sub(lc, "List every date in the text", "d", [], 1)
    right.sub(rc, "List every date in the text!", "d", [], 0)
    right.sub(rc, "Summarise the chapter about whales.", "w", [], 1)
    pairs = [p for p in compare_runs(left.nodes, right.nodes).pairs if p.kind == "llm_query"]
    assert [(p.left.output, p.right.output) for p in pairs] == [("w", "w"), ("d", "d")]  # type: ignore[union-attr]


def test_an_extra_iteration_on_one_side_is_unmatched() -> None:
    a = three_turns()
    b = Run()
    b.turn(1, "Look first.\n```repl\nprint(len(context))\n```", "print(len(context))")
    b.turn(2, "Search.\n```repl\nhits\n```", "hits = find(text)\nprint(hits)\nx = 1")
    b.turn(3, "Hmm, let me print more.\n```repl\nprint(text[:100])\n```", "print(text[:100])")
    (cell,) = b.turn(4, "Ask the sub model.\n```repl\nllm_query_batched(chunks)\n```", "ask")
    for i, (lo, hi) in enumerate([(0, 100), (100, 200), (200, 300)]):
        b.sub(cell, f"chunk {lo}", f"answer {lo}", [[lo, hi]], i)
    b.final("42")
    cmp = compare_runs(a.nodes, b.nodes)
    pair = cmp.divergence
    assert pair is not None and pair.left is None and pair.right is not None
    assert pair.right.output.startswith("Hmm")  # type: ignore[union-attr]
    unmatched = [p for p in cmp.pairs if not p.matched]
    assert len(unmatched) == 2  # that turn's lm call and its cell; all else pairs up again
    assert all(p.same for p in cmp.pairs if p.matched)


def test_similarity_overlap_alignment_and_summary() -> None:
    assert similarity("a\nb\nc\n", "a\nb\nc\n") == 1.0 and similarity(None, "") == 1.0
    assert span_overlap([[0, 10]], [[5, 15]]) == 5 / 15
    assert span_overlap([[0, 10], [5, 20]], [[0, 20]]) == 1.0 and span_overlap([], [[0, 1]]) == 0
    assert align([1, 2, 3], [1, 3], lambda x, y: float(x == y)) == [(1, 1), (2, None), (3, 3)]
    left = RunSummary(
        "a",
        answer="x",
        status="ok",
        iterations=2,
        llm_calls=3,
        tokens_in=10,
        tokens_out=5,
        cost_usd=None,
        created_at=0.0,
        ended_at=2.0,
    )
    rows = {r["measure"]: r for r in summary(left, replace(left, cost_usd=0.5, answer="y"))}
    assert rows["cost (USD)"]["left"] is None and rows["cost (USD)"]["differs"]
    assert rows["tokens"]["left"] == 15 and not rows["tokens"]["differs"]
    assert rows["answer"]["differs"] and rows["time (s)"]["right"] == 2.0


# ---- the page --------------------------------------------------------------------------------


def test_compare_page_shows_where_a_fork_diverged(traces_dir: Path, fresh_app: None) -> None:
    store = TraceStore(traces_dir)
    try:
        context = "Filler. " * 300 + "The secret code is 4471. " + "More. " * 300
        original = RLM("demo/root", "demo/sub", store=store).run(
            context, "What is the secret code?"
        )
        second = [n for n in store.nodes(original.run_id) if n.kind == "lm"][1]
        forked = fork_run(
            store, original.run_id, second.node_id, response="No need to search.\nFINAL(7)"
        )
    finally:
        store.close()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["b"] = forked.run_id
    at.run()
    assert not at.exception
    # a fork is compared with the run it was forked from
    assert at.selectbox(key="compare_a").value == original.run_id
    assert at.query_params["a"] == original.run_id
    warning = at.warning[0].value
    assert "First divergence" in warning and "iteration 2" in warning and "response" in warning
    codes = [c.value for c in at.code]
    assert "No need to search.\nFINAL(7)" in codes and second.output in codes
    table = at.dataframe[0].value
    assert isinstance(table, pd.DataFrame)
    answers = table[table[""] == "answer"].iloc[0]
    assert answers["Run B"] == "7" and answers["Run A"] == original.answer
    assert any("Run B is a fork of run A" in c.value for c in at.caption)

    at.selectbox(key="compare_pick").set_value(0).run()  # the run nodes: the same question
    assert not at.exception
    assert any("question** — same" in m.value for m in at.markdown)

    at.selectbox(key="compare_a").set_value(forked.run_id).run()
    assert not at.exception
    assert any("two different runs" in i.value for i in at.info)


def test_big_batches_pair_the_same_calls_as_scoring_every_pair() -> None:
    """Big batches score only the pairs that can match; the pairing equals the one of scoring
    all 13,200 pairs (calls with and without spans, repeated prompts, shuffled order)."""
    rnd = random.Random(4)

    def calls(n: int, shift: int) -> list[Node]:
        out = []
        for i in range(n):
            start = i * 100 + shift
            spans = [[start, start + 100 + 50 * (i % 3)]] if i % 5 else []
            out.append(Node(new_id(), "r", "c", "llm_query", 1, i, input=f"p{i % 40}"))
            out[-1].context_spans = spans
        rnd.shuffle(out)
        return out

    left, right = calls(120, 0), calls(110, 30)
    scored = sorted(
        (_sub_score(a, b, True), i, j) for i, a in enumerate(left) for j, b in enumerate(right)
    )
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    partner: dict[int, int] = {}
    for score, i, j in scored:
        if score >= SUB_MIN and i not in partner and j not in partner.values():
            partner[i] = j
    expected = {left[i].node_id: right[j].node_id for i, j in partner.items()}
    got = {a.node_id: b.node_id for a, b in match_subs(left, right) if a and b}
    assert got == expected and len(got) > 50
