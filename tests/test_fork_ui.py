"""Forking from the Explorer (background run, link to the fork, where it branched in the graph),
keys that never reach the traces dir, and the "Ask again" playground against the fake server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from conftest import explorer_page, repl
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.analysis.graph import FORK_COLOUR, marks, vis_payload
from rlm_core.engine.replay import fork_run
from rlm_core.types import Node

CONTEXT = "Filler. " * 400 + "The secret code is 4471. " + "More. " * 400
KEY = "sk-test-FORKKEY"


def demo_run(traces_dir: Path) -> tuple[str, list[Node]]:
    store = TraceStore(traces_dir)
    try:
        result = RLM("demo/root", "demo/sub", store=store).run(CONTEXT, "What is the secret code?")
        return result.run_id, store.nodes(result.run_id)
    finally:
        store.close()


def payload(at: AppTest) -> dict[str, Any]:
    return json.loads(at.get("bidi_component")[0].proto.json)


def test_fork_panel_runs_a_fork_in_the_background(traces_dir: Path, fresh_app: None) -> None:
    run_id, nodes = demo_run(traces_dir)
    lm = [n for n in nodes if n.kind == "lm"][1]
    at = explorer_page(run=run_id, node=lm.node_id)
    assert not at.exception
    box = at.text_area(key=f"fork_text_{lm.node_id}")
    assert box.value == lm.output  # prefilled with the recorded response
    box.set_value("I have seen enough.\nFINAL(forty-two)")
    at.text_input(key="fork_api_key").set_value(KEY)
    next(b for b in at.button if b.label == "Run fork").click().run()
    assert not at.exception
    deadline = time.monotonic() + 30
    while not at.success and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    assert not at.exception
    assert any("fork finished" in s.value for s in at.success)
    # run alone the Explorer page is not registered: links to it fall back to link buttons
    link = next(
        b.proto for b in at.get("link_button") if b.proto.label.startswith("Open the fork ")
    )
    fork_id = link.url.split("run=")[1]

    at = explorer_page(run=fork_id)
    assert not at.exception
    assert f"Forked from run {run_id} at node {lm.node_id}" in [
        b.proto.label for b in at.get("link_button")
    ]
    shown = {n["id"]: n for n in payload(at)["nodes"]}
    fork_point = [n for n in shown.values() if n["shadow"]["enabled"]]
    assert len(fork_point) == 1 and fork_point[0]["shadow"]["color"] == FORK_COLOUR
    assert "fork point" in fork_point[0]["title"]
    faded = [n for n in shown.values() if n["opacity"] == 0.4]
    assert len(faded) == 2  # the first lm call and its code cell, replayed
    assert all("replayed" in n["title"] for n in faded)

    # the key typed into the form is in this session only: no file of the traces dir has it
    st.cache_resource.clear()  # closes the store, so the database file is complete on disk
    files = [p.read_bytes() for p in traces_dir.rglob("*") if p.is_file()]
    assert any(b"forty-two" in data for data in files)  # the search does see the fork's texts
    assert not any(KEY.encode() in data for data in files)


def test_fork_point_and_replayed_marks_in_the_graph(traces_dir: Path) -> None:
    run_id, nodes = demo_run(traces_dir)
    code = [n for n in nodes if n.kind == "code"][1]
    store = TraceStore(traces_dir)
    try:
        forked = fork_run(store, run_id, code.node_id, code="FINAL('edited')", api_key=KEY)
        fork_nodes = store.nodes(forked.run_id)
    finally:
        store.close()
    assert forked.answer == "edited"
    assert marks(nodes) == {}  # an ordinary run is drawn as before
    how = marks(fork_nodes)
    lms = [n for n in fork_nodes if n.kind == "lm"]
    assert how[lms[1].node_id] == "fork" and how[lms[0].node_id] == "replayed"
    assert fork_nodes[0].node_id not in how  # the run node itself is this run's
    data = vis_payload(fork_nodes)
    keys = {frozenset(n) for n in data["nodes"]}
    assert len(keys) == 1  # every node carries every style key: the browser merges updates
    leaks = [p for p in traces_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaks == []


def test_playground_asks_again_next_to_the_old_answer(
    fake: Callable[..., Any], fresh_app: None
) -> None:
    result, server, _ = fake([repl("x = llm_query('Summarise: ' + context)\nFINAL(x)")])
    store = TraceStore()
    try:
        sub = next(n for n in store.nodes(result.run_id) if n.kind == "llm_query")
    finally:
        store.close()
    at = explorer_page(run=result.run_id, node=sub.node_id)
    assert not at.exception
    assert at.text_input(key=f"ask_model_{sub.node_id}").value == "openai/sub"
    assert at.text_input(key=f"ask_base_{sub.node_id}").value == server.base_url
    at.text_area(key=f"ask_p_{sub.node_id}").set_value("Just this prompt")
    at.text_input(key=f"ask_key_{sub.node_id}").set_value("sk-fake")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    shown = [t.value for t in at.text]
    assert sub.output in shown  # the recorded answer ...
    assert "sub saw 16 chars: Just this prompt" in shown  # ... next to the new one
    assert "from openai/sub" in shown

    at.text_input(key=f"ask_model_{sub.node_id}").set_value("openai/nosuch")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    assert any("call failed" in e.value for e in at.error)
    assert not any("Traceback" in t.value for t in at.text)
