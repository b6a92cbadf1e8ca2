"""The Explorer's insight UI: dashed data-flow edges in the graph payload, the document view
(bounded windows, escaping), coverage bins, timeline rows, and every panel under AppTest."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from conftest import explorer_page
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.analysis.graph import dataflow_edges, vis_payload
from rlm_core.analysis.insight import coverage
from rlm_core.types import Node
from ui import document_view
from ui.explorer.cost_panels import pack_rows
from ui.explorer.panels import MAX_SEGMENTS, PANELS, coverage_bins, touching

ROOT = Path(__file__).resolve().parents[1]
NEEDLE = "The secret code is 4471."
UNSEEN = "Line 2999: nothing"
EVIL = '<script>alert(1)</script> <img src=x onerror="alert(2)"> ![x](http://evil.example/p.png)'


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def context() -> str:
    lines = [f"Line {i}: nothing to see here." for i in range(3000)]
    return " ".join([*lines[:1500], NEEDLE, EVIL, *lines[1500:]])


@pytest.fixture(scope="module")
def _recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("insight_demo")
    result = RLM("demo/root", "demo/sub", traces_dir=path).run(
        context(), "What is the secret code?"
    )
    assert result.status == "ok"
    return path, result.run_id


@pytest.fixture
def demo(_recorded: tuple[Path, str], traces_dir: Path) -> tuple[str, list[Node]]:
    shutil.copytree(_recorded[0], traces_dir, dirs_exist_ok=True)
    store = TraceStore(traces_dir)
    try:
        return _recorded[1], store.nodes(_recorded[1])
    finally:
        store.close()


def of_kind(nodes: list[Node], kind: str) -> list[Node]:
    return [n for n in nodes if n.kind == kind]


# ---- payload: dashed data-flow edges -------------------------------------------------------


def test_dataflow_edges_are_dashed_and_keyed_like_tree_edges(demo: tuple[str, list[Node]]) -> None:
    _, nodes = demo
    payload = vis_payload(nodes)
    tree = [e for e in payload["edges"] if not e["dashes"]]
    flow = [e for e in payload["edges"] if e["dashes"]]
    assert len(tree) == len(nodes) - 1
    sub = of_kind(nodes, "llm_query")[0]
    final = of_kind(nodes, "final")[0]
    cells = {c.node_id for c in of_kind(nodes, "code") if c.meta.get("assignments")}
    targets = {e["to"] for e in flow if e["from"] == sub.node_id}
    assert cells | {final.node_id} <= targets
    to_final = next(e for e in flow if e["to"] == final.node_id)
    assert to_final["label"] == "answer"
    # every edge carries the same keys (the browser merges updates), ids never collide
    assert len({frozenset(e) for e in payload["edges"]}) == 1
    assert {"dashes", "label", "color", "arrows"} <= set(payload["edges"][0])
    ids = [e["id"] for e in payload["edges"]]
    assert len(ids) == len(set(ids))
    assert not {e["id"] for e in flow} & {n.node_id for n in nodes}
    assert all(not e["dashes"] for e in vis_payload(nodes, dataflow=False)["edges"])


def test_dataflow_edges_skip_nodes_not_drawn_and_escape_names() -> None:
    sub = Node("s1", "r", "c1", "llm_query", 1, 2)
    cell = Node("c1", "r", "r", "code", 0, 1, meta={"assignments": {"x<b>": ["s1"], "y": ["zz"]}})
    edges = dataflow_edges([sub, cell])
    assert [(e["from"], e["to"]) for e in edges] == [("s1", "c1")]
    assert "<" not in edges[0]["label"] and "&lt;b&gt;" in edges[0]["title"]
    assert dataflow_edges([cell]) == []


# ---- document view -------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_window_html_renders_hostile_text_inert() -> None:
    text = "safe start " + EVIL + " tail"
    start = text.index("<script>")
    out = document_view.window_html(text, 0, len(text), [(start, start + 30, "focus")])
    parser = _Tags()
    parser.feed(out)
    # the only elements are the ones we made; their attributes are our constants
    assert {tag for tag, _ in parser.tags} == {"div", "mark"}
    for _, attrs in parser.tags:
        assert set(attrs) <= {"class", "style"}
        assert "evil" not in str(attrs.values())
    assert "<script" not in out and "<img" not in out  # as text only: &lt;script&gt;
    assert "".join(parser.text).replace("…", "") == text  # the text itself survives, as text
    assert "![x](http://evil.example/p.png)" in "".join(parser.text)


def test_the_current_range_stays_underlined_where_it_was_also_printed() -> None:
    text = "a" * 10 + "b" * 10 + "c" * 10
    marks = [(10, 20, "focus"), (5, 25, "shown")]  # printed over the whole current range
    out = document_view.window_html(text, 0, len(text), marks)
    parser = _Tags()
    parser.feed(out)
    # the printed colour wins, inside an underlining mark of the current range
    assert '<mark class="rlm-mark rlm-focus"' in out and out.count("rlm-focus") == 1
    focus_at = out.index("rlm-focus")
    assert out.index("rlm-shown", focus_at) < out.index("</mark></mark>", focus_at)
    assert out.count('class="rlm-mark rlm-shown"') == 3  # before, inside and after the range


def test_window_is_bounded_for_huge_ranges() -> None:
    total = 100_000_000
    lo, hi = document_view.window(10, total, total)
    assert (lo, hi) == (0, 10 + document_view.MAX_RANGE_SHOWN + document_view.RADIUS)
    lo, hi = document_view.window(total - 5, total, total)
    assert hi == total and hi - lo <= document_view.RADIUS + 5


def test_window_opens_on_the_range() -> None:
    """The box shows about two lines before the range, so the range is in view at once."""
    lo, hi = document_view.window(500_000, 500_080, 1_000_000)
    assert 500_000 - lo == document_view.LEAD and hi == 500_080 + document_view.RADIUS


def test_ranges_of_each_kind(demo: tuple[str, list[Node]]) -> None:
    _, nodes = demo
    sub = of_kind(nodes, "llm_query")[0]
    final = of_kind(nodes, "final")[0]
    assert document_view.ranges_of(sub, nodes)[0] == sub.context_spans
    assert document_view.ranges_of(final, nodes)[0] == sub.context_spans
    probe = of_kind(nodes, "code")[0]
    read, shown = document_view.ranges_of(probe, nodes)
    assert read and shown == probe.meta["shown_spans"]
    late_lm = of_kind(nodes, "lm")[-1]
    assert document_view.ranges_of(late_lm, nodes)[1] == probe.meta["shown_spans"]
    assert document_view.ranges_of(of_kind(nodes, "lm")[0], nodes) == ([], [])


# ---- coverage and timeline ------------------------------------------------------------------


def test_coverage_bins_cap_a_100mb_context_and_keep_small_reads_visible() -> None:
    total = 100_000_000
    nodes = [
        Node(f"c{i}", "r", "r", "code", 0, i, context_spans=[[i * 9_000, i * 9_000 + 500]])
        for i in range(5_000)
    ]
    nodes.append(Node("s", "r", "c1", "llm_query", 1, 1, context_spans=[[77_000_000, 77_000_100]]))
    segments = coverage(nodes, total)
    assert len(segments) > MAX_SEGMENTS
    bins = coverage_bins(segments, total)
    assert len(bins) <= MAX_SEGMENTS
    assert bins[0]["start"] == 0 and bins[-1]["end"] == total
    hit = [b for b in bins if b["start"] <= 77_000_000 < b["end"]]
    assert hit[0]["state"] == "model" and 0 < hit[0]["model"] < 0.01
    few = coverage_bins(segments[:5], total)
    assert [b["state"] for b in few] == [s["state"] for s in segments[:5]]
    assert touching(nodes, 77_000_050, 77_000_060)["seen by a model call"] == ["s"]


def test_timeline_rows_show_parallel_calls() -> None:
    bars = [
        {"node_id": "a", "lane": 1, "start": 0.0, "end": 2.0},
        {"node_id": "b", "lane": 1, "start": 0.1, "end": 1.0},
        {"node_id": "c", "lane": 1, "start": 2.5, "end": 3.0},
        {"node_id": "d", "lane": 0, "start": 0.0, "end": 5.0},
    ]
    rows = {r["node_id"]: r["row"] for r in pack_rows(bars)}
    assert rows == {"a": 0, "b": 1, "c": 0, "d": 0}


# ---- the panels in the Explorer (AppTest) ---------------------------------------------------


def panel(at: AppTest, name: str) -> AppTest:
    at.radio(key="explorer_panel").set_value(name).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def html_bodies(at: AppTest) -> list[str]:
    return [str(h.proto.body) for h in at.get("html")]


def test_every_panel_renders(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    sub = of_kind(nodes, "llm_query")[0]
    at = explorer_page(run=run_id, node=sub.node_id)
    assert not at.exception
    assert at.radio(key="explorer_panel").options == list(PANELS)
    # the payload sent to the graph carries the dashed flow edges; the toggle drops them
    data = json.loads(at.get("bidi_component")[0].proto.json)
    assert any(e["dashes"] for e in data["edges"])
    at.toggle(key="explorer_dataflow").set_value(False).run()
    data = json.loads(at.get("bidi_component")[0].proto.json)
    assert not any(e["dashes"] for e in data["edges"])

    panel(at, "Document")
    body = html_bodies(at)[0]
    assert 'class="rlm-mark rlm-focus"' in body and "secret code is 4471" in body
    assert any("range 1 of 1" in t.value for t in at.text)

    panel(at, "Coverage")
    assert [m.label for m in at.metric][-3:] == [
        "Seen by a model",
        "Read by code only",
        "Never read",
    ]
    assert at.get("vega_lite_chart")
    at.number_input(key=f"coverage_pos_{run_id}").set_value(context().index(NEEDLE)).run()
    assert any("seen by a model call: 1 node" in c.value for c in at.caption)
    at.button(key=f"cov_seen_0_{sub.node_id}").click().run()
    assert at.query_params["node"] == sub.node_id

    panel(at, "Timeline")
    assert at.get("vega_lite_chart")
    panel(at, "Budget")
    assert any("max_iterations" in str(d.value) for d in at.dataframe)


def test_where_is_and_health(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    at = panel(explorer_page(run=run_id), "Where is X?")
    at.text_input(key=f"where_{run_id}").input(NEEDLE).run()
    assert not at.exception
    assert any("1 occurrence(s); 1 of them seen by a model call" in t.value for t in at.text)
    sub = of_kind(nodes, "llm_query")[0]
    at.button(key=f"where_0_seen_0_{sub.node_id}").click().run()
    assert at.query_params["node"] == sub.node_id

    at.text_input(key=f"where_{run_id}").input(UNSEEN).run()
    assert any("this is why the needle was missed" in e.value.lower() for e in at.error)
    at.text_input(key=f"where_{run_id}").input("no such text anywhere").run()
    assert any("does not occur" in i.value for i in at.info)

    panel(at, "Health")
    # the needles typed above are checked; messages quoting them are plain text
    assert any("no model call ever saw it" in t.value and UNSEEN in t.value for t in at.text)
    assert not any(UNSEEN in m.value for m in at.markdown)


def test_document_view_escapes_hostile_context(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    sub = of_kind(nodes, "llm_query")[0]
    at = panel(explorer_page(run=run_id, node=sub.node_id), "Document")
    body = html_bodies(at)[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script" not in body and "<img" not in body
    assert not any("evil.example" in m.value for m in at.markdown)


def test_inspector_says_where_a_sub_call_answer_went(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    sub = of_kind(nodes, "llm_query")[0]
    at = explorer_page(run=run_id, node=sub.node_id)
    assert any("Where its answer went" in m.value for m in at.markdown)
    assert any(t.value.startswith("into the variable(s): ") for t in at.text)
    assert any(t.value == "and into the final answer" for t in at.text)
    rollup = [t.value for t in at.text if t.value.startswith("inclusive")]
    assert rollup and "1 calls" in rollup[0]
    final = of_kind(nodes, "final")[0]
    cells = [c for c in of_kind(nodes, "code") if sub.node_id in str(c.meta.get("assignments"))]
    at.button(key=f"used_{sub.node_id}_{len(cells)}_{final.node_id}").click().run()
    assert at.query_params["node"] == final.node_id


def test_dropped_sub_call_is_called_dropped(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        run = Node(
            "r1",
            "r1",
            None,
            "run",
            0,
            0,
            status="ok",
            input="q?",
            meta={"question": "q?", "root_model": "demo/root", "sub_model": "demo/sub"},
        )
        cell = Node("c1", "r1", "r1", "code", 0, 1, status="ok", code="llm_query('x')")
        sub = Node(
            "s1", "r1", "c1", "llm_query", 1, 2, status="ok", output="lost", meta={"used_by": []}
        )
        for n in (run, cell, sub):
            store.write(n)
        store.flush()
    finally:
        store.close()
    at = explorer_page(run="r1", node="s1")
    assert not at.exception
    assert any(w.value.startswith("Dropped") for w in at.warning)


def test_run_page_shows_a_cost_estimate(fresh_app: Any) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception
    assert any("root model, per iteration: $0.0000" in t.value for t in at.text)
    assert any("sub model, one full pass over the context" in t.value for t in at.text)
