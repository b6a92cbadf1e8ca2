"""Provenance on the documents people bring: every sub-call's recorded slice lies inside what
its prompt was cut from (precision 100%) and covers it (>= 99% of every piece), on repetitive
logs, CSV rows, JSON records, boilerplate and shared license headers (provenance_corpus.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import repl, stored
from provenance_corpus import (
    BOILERPLATE,
    FIXED_CHUNKS,
    HEADERS,
    LICENSE,
    LINE_FILTER,
    MATCHED_LINES,
    PARAGRAPHS,
    RECORDS,
    REGEX_WINDOWS,
    ROW_BLOCKS,
    SAMPLED_CHUNKS,
    Score,
    Shape,
    csv_export,
    huge_log,
    json_records,
    licensed_files,
    of_nodes,
    run_shapes,
    score,
    server_log,
    shape,
    town_records,
)

from rlm_core import RLM
from rlm_core.analysis.insight import coverage, where_is
from rlm_core.analysis.narrate import QUESTION
from rlm_core.context import text_of
from rlm_core.engine.provenance import place
from rlm_core.engine.spans import SURE, ContextIndex, merge_spans
from rlm_core.evaluate.examples import NEEDLE, needle_document
from rlm_core.models.model import Role
from rlm_core.models.scripted import ScriptedModel

LOG = server_log(400_000)
CASES: dict[str, tuple[Any, list[Shape]]] = {
    "log": (
        LOG,
        [
            shape("chunks", FIXED_CHUNKS, size=20_000),
            shape("windows", REGEX_WINDOWS, radius=300, limit=20),
            shape("lines", LINE_FILTER, word=" ERROR ", group=10),
            shape("matched", MATCHED_LINES, limit=40, group=10),
        ],
    ),
    "csv": (csv_export(200_000), [shape("rows", ROW_BLOCKS, block=200)]),
    "json": (json_records(300), [shape("records", RECORDS, limit=60)]),
    "license": (
        licensed_files(30),
        [shape("headers", HEADERS, chars=len(LICENSE)), shape("files", HEADERS, chars=100_000)],
    ),
    "town": (town_records(200_000), [shape("paras", PARAGRAPHS, limit=60)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_slice_is_exact_on_the_real_worker(case: str, traces_dir: Path) -> None:
    context, shapes = CASES[case]
    text = text_of(context)
    for cell, calls in zip(shapes, run_shapes(context, shapes, traces_dir), strict=True):
        _, truth = cell.truth(context)
        result = score(of_nodes(calls), truth, text, Score())
        assert result.outside == 0 and result.phantom_chars == 0, (cell.name, result.examples)
        assert result.pieces_below(0.99) == 0, (cell.name, str(result))
        assert all(n.meta["used_by"] == ["answers"] for n in calls)


def findable(prompt: str, text: str, pieces: list[list[int]]) -> list[list[int]]:
    """The pieces matching alone promises to find: SURE characters or more, or a whole line of
    both the document and the prompt."""

    def line(s: str, a: int, b: int) -> bool:
        return (a == 0 or s[a - 1] == "\n") and (b == len(s) or s[b] == "\n")

    out = []
    for a, b in pieces:
        at = prompt.find(text[a:b])
        if b - a >= SURE or (line(text, a, b) and line(prompt, at, at + b - a)):
            out.append([a, b])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_matching_alone_never_asserts_a_wrong_place(case: str) -> None:
    """Without the worker's help (imported traces, other REPLs) a run found at several places is
    flagged, never asserted; every findable piece is placed or flagged."""
    context, shapes = CASES[case]
    index, text = ContextIndex(context), text_of(context)
    for cell in shapes:
        prompts, truth = cell.truth(context)
        placed = [place(p, index) for p in prompts]
        result = score([(p.spans, p.ambiguous) for p in placed], truth, text, Score())
        assert result.phantom_chars == 0, (cell.name, result.examples)
        truth = [findable(p, text, t) for p, t in zip(prompts, truth, strict=True)]
        result = score([(p.spans, p.ambiguous) for p in placed], truth, text, Score())
        assert result.pieces_below(0.99) == result.flagged, (cell.name, str(result))


def test_identical_headers_are_flagged_with_how_often_they_occur() -> None:
    files = licensed_files(12)
    prompts, _ = shape("headers", HEADERS, chars=len(LICENSE)).truth(files)
    placed = place(prompts[5], ContextIndex(files))
    assert placed.spans == []
    (flag,) = placed.ambiguous
    assert flag["occurrences"] == 12 and len(flag["places"]) == 12
    assert text_of(files)[flag["start"] : flag["end"]] == LICENSE.strip()


def test_the_repetitive_log_case_through_the_fake_server(fake: Any) -> None:
    """The case of the issue: a 400 KB log in 20,000-character chunks through
    llm_query_batched, and a window around regex hits through llm_query."""
    code = (
        "chunks = [context[i:i + 20000] for i in range(0, len(context), 20000)]\n"
        "answers = llm_query_batched([f'Any errors?\\n{c}' for c in chunks])\n"
        "import re\n"
        "for m in list(re.finditer('upstream timeout', context))[:4]:\n"
        "    notes = llm_query('Why?\\n' + context[max(0, m.start() - 400):m.end() + 400])"
    )
    result, _, _ = fake([repl(code), repl("FINAL('done')")], context=LOG)
    assert result.status == "ok"
    _, nodes = stored(result.run_id)
    calls = [n for n in nodes if n.kind == "llm_query"]
    assert len(calls) == 24
    for n in calls:
        piece = n.input.split("\n", 1)[1]
        ((start, end),) = n.context_spans
        assert LOG[start:end] == piece, n.meta
    batch = sorted((n for n in calls if "batch" in n.meta), key=lambda n: n.meta["batch_index"])
    assert [n.context_spans for n in batch] == [
        [[i, min(i + 20_000, len(LOG))]] for i in range(0, len(LOG), 20_000)
    ]


def test_a_hundred_megabyte_context(traces_dir: Path) -> None:
    context = huge_log(100_000_000)
    cell = shape("sampled", SAMPLED_CHUNKS, size=20_000, step=9_999_991)
    (calls,) = run_shapes(context, [cell], traces_dir)
    _, truth = cell.truth(context)
    result = score(of_nodes(calls), truth, context, Score())
    assert result.calls == 10 and result.phantom_chars == 0 and result.pieces_below(0.99) == 0


def test_child_rlms_over_slices(traces_dir: Path) -> None:
    """The root hands four 50,000-char slices to child RLMs; each child maps its own context in
    10,000-char chunks: every level records places in the original."""
    top = "slices = [context[a:a + 50000] for a in range(0, 200000, 50000)]\n"
    top += "answers = rlm_query_batched(['Any errors here?'] * 4, contexts=slices)"
    inner = shape("chunks", FIXED_CHUNKS, size=10_000).code
    inner += "\nanswers = llm_query_batched(prompts)"

    def root(messages: list[dict[str, Any]]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        child = "Question: Any errors here?" in messages[1]["content"]
        return f"```repl\n{(inner if child else top) if turn == 0 else 'FINAL(answers[0])'}\n```"

    def make(name: str, role: Role) -> ScriptedModel:
        return ScriptedModel(name, root if role == "root" else lambda m: "checked the chunk")

    rlm = RLM("s/root", "s/sub", models=make, child_root_model="s/root", traces_dir=traces_dir)
    result = rlm.run(LOG, "What went wrong?")
    assert result.status == "ok"
    _, nodes = stored(result.run_id)
    asked = sorted((n for n in nodes if n.kind == "rlm_query"), key=lambda n: n.meta["batch_index"])
    for i, node in enumerate(asked):
        a = 50_000 * i
        assert node.context_spans == [[a, a + 50_000]]
        cell, final = sorted(
            (n for n in nodes if n.kind == "code" and n.parent_id == node.meta["child_run"]),
            key=lambda n: n.node_id,
        )
        assert cell.context_spans == [[a, a + 50_000]] and final.context_spans == []
        calls = sorted(
            (n for n in nodes if n.parent_id == cell.node_id), key=lambda n: n.meta["batch_index"]
        )
        assert [n.context_spans for n in calls] == [
            [[a + k, a + k + 10_000]] for k in range(0, 50_000, 10_000)
        ]


def test_the_demo_reads_what_it_reads(traces_dir: Path) -> None:
    """The demo's first cell joins the parts and prints 500 characters: it read 500, not all."""
    context = needle_document(200_000)
    result = RLM("demo/root", "demo/sub", traces_dir=traces_dir).run(context, QUESTION)
    _, nodes = stored(result.run_id)
    probe, search, cut, reduce = sorted(
        (n for n in nodes if n.kind == "code"), key=lambda n: n.node_id
    )
    assert probe.context_spans == [[0, 500]] and probe.meta["shown_spans"] == [[0, 500]]
    assert search.context_spans == [[0, len(context)]]  # finditer scans everything
    (call,) = [n for n in nodes if n.kind == "llm_query"]
    ((start, end),) = call.context_spans
    assert cut.context_spans == [[start, end]] and context[start:end] in call.input
    assert context.find(NEEDLE) in range(start, end) and reduce.context_spans == []
    assert call.meta["used_by"] == ["a", "answer", "answers", "found"]


def test_coverage_and_where_is_agree_with_the_slices(traces_dir: Path) -> None:
    """Minutes with a notice every fifth paragraph; 60 paragraphs sent one per call: Coverage
    marks exactly those paragraphs as seen, and Where is X? names, for each copy of the notice,
    the one call whose paragraph it is (or none)."""
    context, (cell,) = CASES["town"]
    (calls,) = run_shapes(context, [cell], traces_dir)
    _, truth = cell.truth(context)
    seen = [[s["start"], s["end"]] for s in coverage(calls, len(context)) if s["state"] == "model"]
    assert seen == merge_spans(r for pieces in truth for r in pieces)
    for hit in where_is(context, BOILERPLATE, calls):
        owner = [
            n.node_id
            for n, pieces in zip(calls, truth, strict=True)
            if any(s <= hit["start"] and hit["end"] <= e for s, e in pieces)
        ]
        assert hit["seen_by_model"] == owner and hit["maybe_seen_by_model"] == []
