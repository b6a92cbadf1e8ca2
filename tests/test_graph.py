"""Graph of a run: tidy tree layout, vis-network payload (escaping, sizes, styles), HTML export."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from rlm_core.analysis.graph import standalone_html, vis_payload
from rlm_core.analysis.layout import BATCH_WRAP, X_SPACING, Y_SPACING, build_graph, tree_layout
from rlm_core.types import Node

EVIL = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"


class Trace:
    """Builds nodes with increasing ids, the way the engine does."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, kind: str, parent: Node | None = None, **kw: Any) -> Node:
        depth = kw.pop("depth", parent.depth + (kind == "run") if parent else 0)
        n = Node(
            node_id=f"{len(self.nodes) + 1:016x}abcdef",
            run_id="r",
            parent_id=parent.node_id if parent else None,
            kind=kind,  # type: ignore[arg-type]
            depth=depth,
            seq=len(self.nodes),
            status=kw.pop("status", "ok"),
            **kw,
        )
        self.nodes.append(n)
        return n

    def batch(self, code: Node, kind: str, size: int, name: str) -> list[Node]:
        meta = {"batch": name, "batch_size": size}
        return [self.add(kind, code, meta={**meta, "batch_index": i}) for i in range(size)]


def synth(n_target: int, seed: int = 0) -> list[Node]:
    """A random recursion: runs with iterations, sub-call batches of all sizes, child runs."""
    rnd = random.Random(seed)
    t = Trace()

    def run(parent: Node | None) -> None:
        r = t.add("run", parent)
        for it in range(1, rnd.randint(2, 8)):
            if len(t.nodes) >= n_target:
                break
            t.add("lm", r, meta={"iteration": it}, tokens_in=rnd.randint(0, 9000))
            code = t.add("code", r, meta={"iteration": it}, output=EVIL)
            size = rnd.choice([0, 1, 3, 12, 13, 40])
            for i in range(size):
                if len(t.nodes) >= n_target:
                    break
                meta = {"batch": f"b{code.node_id}", "batch_index": i, "batch_size": size}
                if r.depth < 3 and rnd.random() < 0.1:
                    run(t.add("rlm_query", code, meta=meta))
                else:
                    t.add("llm_query", code, meta=meta, tokens_out=rnd.randint(0, 900))
        t.add("final", r)

    while len(t.nodes) < n_target:
        run(None)
    return t.nodes[:n_target]


def test_parents_centred_above_children_and_no_shared_spots() -> None:
    nodes = synth(2000, seed=1)
    g = build_graph(nodes)
    pos = tree_layout(g)
    assert set(pos) == {n.node_id for n in nodes}
    assert len(set(pos.values())) == len(nodes)
    for u in g:
        kids = list(g.successors(u))
        if not kids:
            continue
        xs = [pos[c][0] for c in kids]
        assert pos[u][0] == pytest.approx((min(xs) + max(xs)) / 2)
        assert all(pos[c][1] > pos[u][1] for c in kids)


def test_levels_follow_tree_depth_without_big_batches() -> None:
    t = Trace()
    root = t.add("run")
    for it in (1, 2):
        t.add("lm", root, meta={"iteration": it})
        code = t.add("code", root, meta={"iteration": it})
        t.batch(code, "llm_query", 5, f"b{it}")
        child = t.add("run", t.add("rlm_query", code))
        t.add("lm", child)
    t.add("final", root)
    pos = tree_layout(build_graph(t.nodes))
    by_id = {n.node_id: n for n in t.nodes}

    def level(n: Node) -> int:
        return 0 if n.parent_id is None else 1 + level(by_id[n.parent_id])

    for n in t.nodes:
        assert pos[n.node_id][1] == level(n) * Y_SPACING
    leaves = sorted(
        x for nid, (x, _) in pos.items() if not any(m.parent_id == nid for m in t.nodes)
    )
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(leaves)}
    assert gaps == {X_SPACING}  # leaves evenly spaced


def test_big_batch_wraps_into_rows_under_its_cell() -> None:
    t = Trace()
    root = t.add("run")
    code = t.add("code", root)
    small = t.batch(code, "llm_query", 5, "small")
    big = t.batch(code, "llm_query", 40, "big")
    pos = tree_layout(build_graph(t.nodes))
    code_y = pos[code.node_id][1]
    assert {pos[n.node_id][1] for n in small} == {code_y + Y_SPACING}
    rows: dict[float, list[float]] = defaultdict(list)
    for n in big:
        rows[pos[n.node_id][1]].append(pos[n.node_id][0])
    assert len(rows) == math.ceil(40 / BATCH_WRAP)
    assert all(len(xs) <= BATCH_WRAP for xs in rows.values())
    xs = [pos[n.node_id][0] for n in big]
    assert max(xs) - min(xs) <= (BATCH_WRAP + 1) * X_SPACING
    assert all(y > code_y for y in rows)
    # the batch keeps its own block: none of the small batch sits inside its span
    assert all(not min(xs) <= pos[n.node_id][0] <= max(xs) for n in small)


def test_wrapped_batch_of_child_runs_does_not_overlap() -> None:
    t = Trace()
    code = t.add("code", t.add("run"))
    for q in t.batch(code, "rlm_query", 15, "b"):
        child = t.add("run", q)
        for it in range(1, 1 + q.meta["batch_index"] % 4):
            t.add("lm", child, meta={"iteration": it})
    pos = tree_layout(build_graph(t.nodes))
    assert len(set(pos.values())) == len(t.nodes)
    first_row = [n for n in t.nodes if n.kind == "rlm_query" and n.meta["batch_index"] < 12]
    second_row = [n for n in t.nodes if n.kind == "rlm_query" and n.meta["batch_index"] >= 12]
    by_id = {n.node_id: n for n in t.nodes}

    def row_of(n: Node) -> Node:
        return n if n.kind == "rlm_query" else row_of(by_id[n.parent_id or ""])

    lowest_of_first = max(
        pos[n.node_id][1] for n in t.nodes if n.depth == 1 and row_of(n) in first_row
    )
    assert pos[second_row[0].node_id][1] > lowest_of_first
    assert len({pos[n.node_id][1] for n in first_row}) == 1


def test_orphans_and_cycles_still_get_positions() -> None:
    t = Trace()
    t.add("run")
    t.add("lm", None, depth=1)
    t.nodes[-1].parent_id = "missing"
    a, b = t.add("code"), t.add("code")
    a.parent_id, b.parent_id = b.node_id, a.node_id
    pos = tree_layout(build_graph(t.nodes))
    assert set(pos) == {n.node_id for n in t.nodes}
    assert len(set(pos.values())) == len(t.nodes)


def test_payload_escapes_every_text_from_nodes() -> None:
    t = Trace()
    root = t.add("run", input=EVIL, model=EVIL)
    t.add("code", root, code=EVIL, output=EVIL, stdout=EVIL, meta={"iteration": EVIL})
    t.add("llm_query", root, error=EVIL, meta={"batch": EVIL, "batch_index": EVIL})
    text = json.dumps(vis_payload(t.nodes))
    for raw in ("<img", "<script", "</script", "& <"):
        assert raw not in text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;" in text


def test_labels_and_edges() -> None:
    t = Trace()
    root = t.add("run")
    t.add("lm", root, meta={"iteration": 3})
    code = t.add("code", root, meta={"iteration": 3})
    t.add("code", root, meta={"iteration": 3})
    t.batch(code, "llm_query", 2, "b")
    t.add("final", root)
    p = vis_payload(t.nodes)
    labels = [n["label"] for n in p["nodes"]]
    assert labels == [
        "run d0",
        "lm #3",
        "code #3.1",
        "code #3.2",
        "llm_query[0]",
        "llm_query[1]",
        "FINAL",
    ]
    assert {(e["from"], e["to"]) for e in p["edges"]} == {
        (n.parent_id, n.node_id) for n in t.nodes if n.parent_id
    }
    assert {n["group"] for n in p["nodes"]} == {"run", "lm", "code", "llm_query", "final"}


def test_size_modes() -> None:
    t = Trace()
    root = t.add("run")
    small = t.add("lm", root, tokens_in=10, tokens_out=5, cost_usd=0.00001)
    big = t.add("lm", root, tokens_in=90_000, tokens_out=9_000, cost_usd=0.5)
    huge = t.add("lm", root, tokens_in=10**12, cost_usd=10**6)

    def sizes(mode: Any) -> dict[str, float]:
        return {n["id"]: n["size"] for n in vis_payload(t.nodes, size_by=mode)["nodes"]}

    for mode in ("tokens", "cost"):
        s = sizes(mode)
        assert s[root.node_id] < s[small.node_id] < s[big.node_id] <= s[huge.node_id] <= 40
        assert s[root.node_id] >= 10
    assert len(set(sizes("none").values())) == 1


def test_status_styles_are_distinct() -> None:
    t = Trace()
    root = t.add("run")
    nodes = {
        s: t.add("lm", root, status=s) for s in ("ok", "error", "limit", "interrupted", "running")
    }
    by_id = {n["id"]: n for n in vis_payload(t.nodes)["nodes"]}
    style = {s: by_id[n.node_id] for s, n in nodes.items()}
    assert style["error"]["color"]["border"] == "#d62728"
    assert style["limit"]["color"]["border"] == "#ff7f0e"
    assert style["interrupted"]["shapeProperties"]["borderDashes"]
    assert style["running"]["shadow"]["enabled"]
    assert len({json.dumps(v["color"]) for v in style.values()}) == 5
    assert all(style[s]["borderWidth"] > style["ok"]["borderWidth"] for s in nodes if s != "ok")


def test_depth_changes_shade() -> None:
    t = Trace()
    root = t.add("run")
    child = t.add("run", t.add("rlm_query", t.add("code", root)))
    by_id = {n["id"]: n for n in vis_payload(t.nodes)["nodes"]}
    assert by_id[root.node_id]["color"] != by_id[child.node_id]["color"]


def test_payload_is_deterministic_and_keeps_known_selection() -> None:
    nodes = synth(300, seed=3)
    shuffled = nodes[:]
    random.Random(9).shuffle(shuffled)
    a = json.dumps(vis_payload(nodes, selected=nodes[5].node_id))
    b = json.dumps(vis_payload(shuffled, selected=nodes[5].node_id))
    assert a == b
    assert json.loads(a)["selected"] == nodes[5].node_id
    assert vis_payload(nodes, selected="nope")["selected"] is None


@pytest.mark.parametrize("n", [2000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_large_graph_timing(n: int) -> None:
    nodes = synth(n, seed=2)
    t0 = time.perf_counter()
    pos = tree_layout(build_graph(nodes))
    t1 = time.perf_counter()
    payload = json.dumps(vis_payload(nodes))
    t2 = time.perf_counter()
    print(
        f"\n{n} nodes: build+layout {1000 * (t1 - t0):.1f} ms, payload+json "
        f"{1000 * (t2 - t1):.1f} ms, {len(payload) / 1e3:.0f} KB"
    )
    assert len(pos) == n


def test_standalone_html_is_offline_and_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyvis

    monkeypatch.chdir(tmp_path)
    nodes = synth(60, seed=4)
    page = standalone_html(nodes, title="run <b>1</b>")
    assert list(tmp_path.iterdir()) == []  # pyvis wrote nothing (no lib/ folder) into the cwd
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert external == []
    vis_js = (Path(pyvis.__file__).parent / "lib/vis-9.1.2/vis-network.min.js").read_text()
    assert vis_js[2000:2400] in page
    assert "<title>run &lt;b&gt;1&lt;/b&gt;</title>" in page
    assert "<img src=x" not in page and "<script>alert" not in page
    assert 'var options = {"physics": {"enabled": false}' in page
    for n in nodes[:5]:
        assert n.node_id in page
