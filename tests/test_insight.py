"""Insight: rollups, timeline, budget, coverage, where_is and the estimate, on built traces."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_core.analysis.insight import (
    budget,
    coverage,
    estimate,
    rollup,
    run_summary,
    timeline,
    where_is,
)
from rlm_core.engine.provenance import place
from rlm_core.engine.spans import ContextIndex, map_spans
from rlm_core.types import Node

T0 = 1_000.0


def mk(
    node_id: str, kind: Any, parent: str | None, depth: int, start: float, end: float, **fields: Any
) -> Node:
    return Node(
        node_id=node_id,
        run_id="R",
        parent_id=parent,
        kind=kind,
        depth=depth,
        seq=0,
        status=fields.pop("status", "ok"),
        started_at=T0 + start,
        ended_at=T0 + end,
        **fields,
    )


def trace() -> list[Node]:
    """A root run with one cell making an llm_query and an rlm_query (whose child's root call
    has no known price), and two root calls."""
    cfg = {
        "max_iterations": 5,
        "max_llm_calls": 4,
        "max_tokens": 1000,
        "max_depth": 1,
        "max_cost_usd": None,
        "timeout_s": 20,
    }
    return [
        mk("R", "run", None, 0, 0, 10, meta={"config": cfg, "iterations": 2, "limit": None}),
        mk(
            "lm1",
            "lm",
            "R",
            0,
            0,
            1,
            model="root",
            tokens_in=100,
            tokens_out=10,
            cost_usd=0.01,
            latency_s=1.0,
            meta={"iteration": 1},
        ),
        mk(
            "code1",
            "code",
            "R",
            0,
            1,
            4,
            context_spans=[[0, 10]],
            meta={"iteration": 1, "block": 1, "shown_spans": [[0, 5]]},
        ),
        mk(
            "llm1",
            "llm_query",
            "code1",
            1,
            1.5,
            2.5,
            model="sub",
            tokens_in=50,
            tokens_out=5,
            cost_usd=0.002,
            latency_s=1.0,
            context_spans=[[20, 40]],
            input="p" * 80,
        ),
        mk("rq", "rlm_query", "code1", 1, 2.5, 3.5, context_spans=[[50, 60]]),
        mk("C", "run", "rq", 1, 2.6, 3.4, input="child question", meta={"iterations": 1}),
        mk(
            "lm2",
            "lm",
            "C",
            1,
            2.6,
            3.0,
            model="child",
            tokens_in=10,
            tokens_out=1,
            cost_usd=None,
            latency_s=0.4,
            meta={"iteration": 1},
        ),
        mk(
            "lm3",
            "lm",
            "R",
            0,
            4,
            5,
            model="root",
            tokens_in=200,
            tokens_out=20,
            cost_usd=0.02,
            latency_s=1.0,
            meta={"iteration": 2},
        ),
        mk("F", "final", "R", 0, 5, 5, output="42"),
    ]


def test_rollup_of_the_whole_run_splits_root_and_sub() -> None:
    r = rollup(trace(), "R")
    assert (r.inclusive.calls, r.inclusive.tokens_in, r.inclusive.tokens_out) == (4, 360, 36)
    assert r.inclusive.cost_usd is None  # the child's root call had no price
    assert (r.root.calls, r.sub.calls) == (3, 1)  # the child's lm counts as a root call
    assert r.sub.cost_usd == pytest.approx(0.002)
    assert r.exclusive.calls == 0
    assert r.wall_s == pytest.approx(10)


def test_rollup_inclusive_and_exclusive_time_of_a_cell() -> None:
    r = rollup(trace(), "code1")
    assert r.inclusive.calls == 2 and r.inclusive.cost_usd is None
    assert r.wall_s == pytest.approx(3)
    assert r.self_wall_s == pytest.approx(1)  # 3 s minus the two sub-calls (1 s each)
    lm = rollup(trace(), "lm1")
    assert lm.exclusive.calls == 1 and lm.exclusive.cost_usd == pytest.approx(0.01)
    assert lm.self_wall_s == pytest.approx(1)


def test_calls_refused_by_a_limit_are_not_counted() -> None:
    nodes = [
        *trace(),
        mk(
            "x",
            "llm_query",
            "code1",
            1,
            3,
            3,
            status="limit",
            error="not called: 4 model calls made",
        ),
    ]
    assert rollup(nodes, "R").inclusive.calls == 4


def test_run_summary() -> None:
    s = run_summary(trace())
    assert s["run_id"] == "R" and s["max_depth"] == 1 and s["iterations"] == 2
    assert s["root"]["calls"] == 3 and s["sub"]["calls"] == 1
    assert s["by_model"]["root"]["cost_usd"] == pytest.approx(0.03)
    assert s["by_model"]["child"]["cost_usd"] is None
    assert s["counts"]["lm"] == 3
    (child,) = s["children"]
    assert child["node_id"] == "C" and child["inclusive"]["calls"] == 1
    assert run_summary([]) == {}


def test_timeline_has_one_bar_per_call_and_cell() -> None:
    rows = timeline(trace())
    assert [r["node_id"] for r in rows] == ["lm1", "code1", "llm1", "lm2", "lm3"]
    code = rows[1]
    assert (code["start"], code["end"], code["lane"], code["label"]) == (1, 4, 0, "cell 1.1")
    assert rows[2]["lane"] == 1 and "80 chars" in rows[2]["label"]
    assert not any(r["running"] for r in rows)


def test_budget_reports_use_and_where_a_limit_fired() -> None:
    nodes = trace()
    nodes[0].meta["limit"] = "max_llm_calls"
    nodes[0].status = "limit"
    nodes.append(
        mk(
            "blocked",
            "llm_query",
            "code1",
            1,
            3,
            3,
            status="limit",
            error="not called: 4 model calls made",
        )
    )
    rows = {r["limit"]: r for r in budget(nodes, nodes[0].meta["config"])}
    calls = rows["max_llm_calls"]
    assert (calls["used"], calls["allowed"], calls["fraction"]) == (4, 4, 1.0)
    assert calls["fired"] and calls["node_ids"] == ["R", "blocked"]
    assert rows["max_tokens"]["used"] == 396 and not rows["max_tokens"]["fired"]
    assert rows["max_cost_usd"]["used"] is None and rows["max_cost_usd"]["fraction"] is None
    assert rows["max_iterations"]["used"] == 2 and rows["max_depth"]["used"] == 1
    assert rows["timeout_s"]["used"] == pytest.approx(10)
    assert budget(nodes) == budget(nodes, nodes[0].meta["config"])  # config from the run


def test_budget_without_limits_fired() -> None:
    assert not any(r["fired"] for r in budget(trace()))


def test_coverage_segments() -> None:
    segments = [(s["start"], s["end"], s["state"]) for s in coverage(trace(), 100)]
    assert segments == [
        (0, 5, "model"),  # printed to the root model
        (5, 10, "code"),
        (10, 20, "never"),
        (20, 40, "model"),
        (40, 50, "never"),
        (50, 60, "model"),
        (60, 100, "never"),
    ]
    assert coverage([], 10) == [{"start": 0, "end": 10, "state": "never"}]


def test_where_is() -> None:
    text = "a" * 22 + "NEEDLE" + "b" * 30 + "NEEDLE" + "c" * 40
    hits = where_is(text, "NEEDLE", trace())
    assert [(h["start"], h["end"]) for h in hits] == [(22, 28), (58, 64)]
    assert hits[0]["seen_by_model"] == ["llm1"] and hits[0]["read_by_code"] == []
    assert hits[1]["seen_by_model"] == [] and hits[1]["shown_to_root"] == []
    assert where_is(text, "missing", trace()) == []
    assert len(where_is("x" * 50, "x", [], cap=7)) == 7


def test_child_offsets_map_through_pieces_of_the_original() -> None:
    original = "".join(f"<{i:04d}>" for i in range(500))
    index = ContextIndex(original)
    child = "Instructions first. " + original[300:600]
    pieces = place(child, index).pieces
    assert pieces == [(20, 320, 300)]
    assert map_spans([[0, 25], [100, 110]], pieces) == [[300, 305], [380, 390]]
    assert map_spans([[0, 10]], pieces) == []


def test_estimate_with_known_and_unknown_prices() -> None:
    known = estimate("openai/gpt-4o-mini", "openai/gpt-4o-mini", 4_000_000)
    assert known["context_tokens"] == 1_000_000
    assert known["root_usd_per_iteration"] > 0 and known["sub_full_pass_usd"] > 0
    assert known["sub_chunks"] == 16  # 128k window: chunks of 64k tokens
    assert known["unknown_prices"] == []
    unknown = estimate("openai/gpt-4o-mini", "openai/no-such-model-xyz", 1000)
    assert unknown["sub_full_pass_usd"] is None
    assert unknown["unknown_prices"] == ["openai/no-such-model-xyz"]
    assert "unknown" in unknown["summary"] and "no-such-model-xyz" in unknown["summary"]
    demo = estimate("demo/root", "demo/sub", 1000)
    assert demo["root_usd_per_iteration"] == 0 and demo["sub_full_pass_usd"] == 0
    # a local GGUF runs here: free before its file is ever loaded (no file at this path)
    local = estimate("local//nowhere/model.gguf", "demo/sub", 1000)
    assert local["root_usd_per_iteration"] == 0 and local["unknown_prices"] == []


def test_where_is_names_calls_that_saw_the_text_at_an_undecided_place() -> None:
    text = "header line one\n" * 3 + "x" * 50
    flag = {"start": 0, "end": 15, "occurrences": 3, "places": [0, 16, 32]}
    call = Node("q", "r", "c", "llm_query", 1, 1, meta={"ambiguous": [flag]})
    hits = where_is(text, "header line one", [call])
    assert [h["maybe_seen_by_model"] for h in hits] == [["q"], ["q"], ["q"]]
    assert all(h["seen_by_model"] == [] for h in hits)
