"""Levels of detail: a run's outline indexed into groups (fan-outs, child runs, blocks of turns),
the view that opens them within a budget, and the payload drawn from it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from test_graph import EVIL, Trace, synth

from rlm_core.analysis.levels import shown_as, view
from rlm_core.analysis.outline import BUDGET, GROUP_PREFIX, TURNS_MAX, WINDOW, Outline
from rlm_core.analysis.outline_graph import group_lines, view_payload
from rlm_core.types import Node


def big_batches(batches: int = 3, size: int = 500, failed: tuple[int, ...] = (7,)) -> Trace:
    """A root with one probe turn and `batches` turns that each map llm_query over `size`
    chunks; the answers flow into a variable of the cell, and some into FINAL."""
    t = Trace()
    root = t.add("run")
    t.add("lm", root, meta={"iteration": 1})
    t.add("code", root, meta={"iteration": 1})
    kept = []
    for it in range(2, 2 + batches):
        t.add("lm", root, meta={"iteration": it})
        code = t.add("code", root, meta={"iteration": it})
        calls = t.batch(code, "llm_query", size, f"b{it}")
        for i, call in enumerate(calls):
            call.status = "error" if i in failed else "ok"
            call.latency_s, call.tokens_in = 0.5 + i % 3, 100 + i
        code.meta["assignments"] = {f"answers_{it}": [c.node_id for c in calls]}
        kept += [c.node_id for c in calls[:5]]
    t.add("final", root, meta={"var": "answer", "sources": kept})
    return t


def recursion(fan: int = 4, leaves: int = 30) -> Trace:
    """A root handing `fan` chunks to child RLMs, each mapping llm_query over `leaves`."""
    t = Trace()
    root = t.add("run")
    t.add("lm", root, meta={"iteration": 1})
    code = t.add("code", root, meta={"iteration": 1})
    for call in t.batch(code, "rlm_query", fan, "top"):
        child = t.add("run", call)
        t.add("lm", child, meta={"iteration": 1})
        t.batch(t.add("code", child, meta={"iteration": 1}), "llm_query", leaves, call.node_id)
        t.add("final", child)
    t.add("final", root)
    return t


def every_node_is_shown(o: Outline, **kw: Any) -> None:
    v = view(o, **kw)
    ids = {d.id for d in v.items}
    assert len(ids) == len(v.items)  # nothing drawn twice
    assert all(d.parent is None or d.parent in ids for d in v.items)
    assert all(shown_as(o, v, n) in ids for n in o.order)


def test_a_small_run_is_drawn_node_by_node_with_cells_under_their_calls() -> None:
    t = Trace()
    root = t.add("run")
    lm = t.add("lm", root, meta={"iteration": 1})
    code = t.add("code", root, meta={"iteration": 1})
    calls = t.batch(code, "llm_query", 5, "b")
    o = Outline(t.nodes)
    assert o.groups == {}
    v = view(o)
    assert [d.id for d in v.items] == [n.node_id for n in t.nodes]
    parent = {d.id: d.parent for d in v.items}
    assert parent[code.node_id] == lm.node_id  # the code came from that call's reply
    assert {parent[c.node_id] for c in calls} == {code.node_id}


def test_big_batches_fold_into_groups_with_their_figures() -> None:
    t = big_batches()
    o = Outline(t.nodes)
    fans = [g for g in o.groups.values() if g.kind == "fanout"]
    assert len(fans) == 3 and all(len(g.members) == 500 for g in fans)
    g = fans[0]
    assert g.statuses == Counter({"ok": 499, "error": 1})
    assert g.latency == (0.5, 2.5) and g.tokens == (100, 599)
    assert [o.by_id[p].status for p in g.problems] == ["error"]
    assert o.target(g.id) == g.problems[0]  # opening it selects the failed call
    v = view(o)
    assert len(v.items) <= BUDGET
    assert Counter(d.role for d in v.items)["folded"] == 3


def test_data_flow_between_groups_is_one_edge_per_pair() -> None:
    t = big_batches()
    o = Outline(t.nodes)
    payload = view_payload(o, view(o))
    flows = [e for e in payload["edges"] if e["dashes"]]
    # each batch -> its cell, and each batch -> FINAL (5 answers each): never 1,500 edges
    assert len(flows) == 6
    assert sum("×500" in e["label"] for e in flows) == 3
    assert sum("×5" in e["label"] and "×500" not in e["label"] for e in flows) == 3
    ids = {n["id"] for n in payload["nodes"]}
    assert all(e["from"] in ids and e["to"] in ids for e in payload["edges"])


def test_selection_opens_its_groups_and_a_window_around_it() -> None:
    t = big_batches(size=500)
    o = Outline(t.nodes)
    calls = [n for n in t.nodes if n.kind == "llm_query"]
    target = calls[300]
    v = view(o, selected=target.node_id)
    gid = o.path(target.node_id)[0]
    assert gid in v.open and v.windows[gid] == (300 // WINDOW) * WINDOW
    drawn = {d.id: d for d in v.items}
    assert target.node_id in drawn
    more = [d for d in v.items if d.role == "more"]
    assert sorted(d.hidden for d in more) == [140, 300]  # 300 before, 500 - 360 after
    assert shown_as(o, v, calls[0].node_id) == gid  # outside the window: its header
    every_node_is_shown(o, selected=target.node_id)
    payload = view_payload(o, v, selected=target.node_id)
    assert payload["selected"] == target.node_id


def test_what_the_user_opened_stays_open_and_folded_stays_folded() -> None:
    o = Outline(big_batches().nodes)
    first = next(g.id for g in o.groups.values() if g.kind == "fanout")
    v = view(o, opened={first: WINDOW})
    assert first in v.open and v.windows[first] == WINDOW
    every_node_is_shown(o, opened={first: WINDOW})
    nested = Outline(recursion().nodes)
    fan = next(g.id for g in nested.groups.values() if g.kind == "fanout" and g.level == 0)
    assert fan in view(nested).open  # it fits the budget: open by default
    assert fan not in view(nested, folded={fan}).open
    inside = nested.groups[fan].members[2]
    assert fan in view(nested, folded={fan}, selected=inside).open  # the selection wins


def test_a_long_run_folds_its_turns_into_blocks() -> None:
    t = Trace()
    root = t.add("run")
    for it in range(1, 201):
        t.add("lm", root, meta={"iteration": it})
        t.add("code", root, meta={"iteration": it})
    t.add("final", root)
    o = Outline(t.nodes)
    blocks = [g for g in o.groups.values() if g.kind == "turns"]
    assert len(blocks) <= TURNS_MAX
    assert blocks[0].turns == (1, 20) and blocks[-1].turns == (181, 200)
    assert all(g.size == 40 for g in blocks)  # lm + code of 20 turns
    assert len(view(o).items) <= BUDGET
    every_node_is_shown(o, selected=t.nodes[251].node_id)


def test_child_runs_open_level_by_level_within_the_budget() -> None:
    nodes = synth(3_000, seed=5)
    o = Outline(nodes)
    assert any(g.kind == "child" for g in o.groups.values())
    v = view(o)
    assert len(v.items) <= BUDGET
    levels = {o.groups[g].level for g in v.open}
    assert levels == set(range(len(levels)))  # outermost first, no level skipped
    every_node_is_shown(o)
    for node in nodes[::97]:
        every_node_is_shown(o, selected=node.node_id)


def test_a_folded_child_run_says_how_many_levels_it_holds() -> None:
    t = recursion(fan=4, leaves=30)
    deeper = next(n for n in t.nodes if n.kind == "run" and n.depth == 1)
    grandchild = t.add("run", t.add("rlm_query", deeper))
    t.add("lm", grandchild, meta={"iteration": 1})
    t.add("final", grandchild)
    o = Outline(t.nodes)
    heads = sorted(group_lines(g)[0] for g in o.groups.values() if g.kind == "child")
    assert heads[0].startswith("child run d1 ·") and heads[0].endswith("nodes")
    assert [h for h in heads if h.endswith(" · 2 levels")] == [heads[-1]]


def test_orphans_and_cycles_are_still_drawn() -> None:
    t = big_batches(batches=1, size=100)
    t.add("lm", None, depth=1).parent_id = "missing"
    a, b = t.add("code"), t.add("code")
    a.parent_id, b.parent_id = b.node_id, a.node_id
    o = Outline(t.nodes)
    every_node_is_shown(o)


def test_group_labels_and_tooltips_are_escaped() -> None:
    t = Trace()
    root = t.add("run")
    code = t.add("code", root)
    for i in range(BUDGET + 5):
        t.add("llm_query", code, meta={"batch": EVIL, "batch_index": i}, error=EVIL, model=EVIL)
    nodes: list[Node] = t.nodes
    o = Outline(nodes)
    text = json.dumps(view_payload(o, view(o)))
    assert "<img" not in text and "<script" not in text
    assert any(g.startswith(GROUP_PREFIX) for g in o.groups)
