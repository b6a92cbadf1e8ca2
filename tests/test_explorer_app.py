"""The Explorer page under AppTest: run and node from the URL, inspector per kind, stepping,
graph clicks, the node table, size-by, and untrusted text that must never become HTML."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from conftest import explorer_page
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.engine import prompts
from rlm_core.engine.prompts import SYSTEM_PROMPT
from rlm_core.types import Node, new_id

ROOT = Path(__file__).resolve().parents[1]
NEEDLE = "The secret code is 4471."
XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    # the page's store is a process-wide cached resource: point it at this test's traces dir,
    # and close it afterwards (clear() calls on_release, which closes the DuckDB file)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def demo_run(context: Any, question: str = "What is the secret code?") -> str:
    result = RLM("demo/root", "demo/sub").run(context, question)
    assert result.status == "ok", result
    return result.run_id


def needle_context() -> dict[str, str]:
    lines = [f"Line {i}: nothing to see here." for i in range(3000)]
    vault = " ".join([*lines[:1500], NEEDLE, *lines[1500:]])
    return {"intro.txt": " ".join(lines[:800]), "vault.md": vault}


@pytest.fixture(scope="module")
def _cached_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo run shared by the tests here (copied per test: each has its own traces dir)."""
    path = tmp_path_factory.mktemp("explorer_demo")
    RLM("demo/root", "demo/sub", traces_dir=path).run(needle_context(), "What is the secret code?")
    return path


@pytest.fixture
def demo(_cached_demo: Path, traces_dir: Path) -> tuple[str, list[Node]]:
    import shutil

    shutil.copytree(_cached_demo, traces_dir, dirs_exist_ok=True)
    store = TraceStore(traces_dir)
    try:
        run_id = store.list_runs()[0].run_id
        return run_id, store.nodes(run_id)
    finally:
        store.close()


def texts(at: AppTest) -> str:
    parts = [str(e.value) for e in (*at.text, *at.code, *at.markdown, *at.caption)]
    return "\n".join(parts)


def payload(at: AppTest) -> dict[str, Any]:
    return json.loads(at.get("bidi_component")[0].proto.json)


def step_slider(at: AppTest) -> Any:
    """The step slider: one per position, so its key names the step it was drawn at."""
    return next(s for s in at.slider if str(s.key).startswith("explorer_step_"))


def of_kind(nodes: list[Node], kind: str) -> list[Node]:
    return [n for n in nodes if n.kind == kind]


# ---- empty state, picking runs -------------------------------------------------------------


def test_empty_state_points_to_the_run_page() -> None:
    at = explorer_page()
    assert not at.exception
    assert any("No runs yet" in i.value and "Run page" in i.value for i in at.info)
    assert not at.get("bidi_component")


def test_run_from_the_url_and_fallback_for_an_unknown_id(demo: tuple[str, list[Node]]) -> None:
    run_id, _ = demo
    newer = demo_run("Just one line: the colour is teal.", "What is the colour?")
    at = explorer_page(run=run_id)
    assert not at.exception
    assert at.selectbox(key="explorer_run").value == run_id
    assert any(f"run id {run_id}" in t.value for t in at.text)
    assert at.query_params["node"] == run_id  # the run node is selected first
    assert not at.warning

    at = explorer_page(run="no-such-run", node="nope")
    assert not at.exception
    assert any("not in this trace store" in w.value for w in at.warning)
    assert at.selectbox(key="explorer_run").value == newer  # newest first
    assert at.query_params["run"] == newer

    at.selectbox(key="explorer_run").set_value(run_id).run()
    assert not at.exception
    assert at.query_params["run"] == run_id and at.query_params["node"] == run_id

    at = explorer_page(run=run_id, node="not-a-node")
    assert not at.exception
    assert any("not part of this run" in w.value for w in at.warning)
    assert at.query_params["node"] == run_id


# ---- the inspector per kind ----------------------------------------------------------------


def test_lm_node_shows_the_full_messages_and_the_response(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    second = of_kind(nodes, "lm")[1]
    at = explorer_page(run=run_id, node=second.node_id)
    assert not at.exception
    body = texts(at)
    assert "Messages sent (4)" in body
    codes = [c.value for c in at.code]
    assert any(c.startswith(SYSTEM_PROMPT[:80]) for c in codes)  # the system prompt
    assert any("What is the secret code?" in c for c in codes)
    assert (second.output or "") in codes  # the response
    assert (of_kind(nodes, "lm")[0].output or "") in codes  # earlier response, as assistant


def test_code_node_shows_code_output_and_model_view(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    cell = of_kind(nodes, "code")[0]
    at = explorer_page(run=run_id, node=cell.node_id)
    assert not at.exception
    python = [c for c in at.code if c.language == "python"]
    assert [c.value for c in python] == [(cell.code or "").strip()]
    values = [c.value.strip() for c in at.code]
    assert (cell.stdout or "").strip() in values and (cell.model_view or "").strip() in values
    body = texts(at)
    assert "Full stdout" in body and "What the model saw" in body
    variables = at.dataframe[0].value
    assert set(variables["name"]) == set(cell.meta["variables"])


def test_a_small_prompts_worked_examples_are_labelled_and_folded(traces_dir: Path) -> None:
    result = RLM("demo/root", "demo/sub", prompt="small").run(needle_context(), "Code?")
    store = TraceStore()
    first = of_kind(store.nodes(result.run_id), "lm")[0]
    store.close()
    at = explorer_page(run=result.run_id, node=first.node_id)
    assert not at.exception
    messages = [e for e in at.expander if " chars" in e.label]
    marked = [e for e in messages if "worked example" in e.label]
    assert len(marked) == len(prompts.worked_example_positions(prompts.SMALL_PROMPT_NAME)) > 0
    assert "worked example" not in messages[0].label + messages[-1].label
    assert not any(e.proto.expanded for e in marked) and messages[-1].proto.expanded


def test_llm_query_shows_slice_position_and_answer(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    sub = next(n for n in of_kind(nodes, "llm_query") if NEEDLE in (n.output or ""))
    at = explorer_page(run=run_id, node=sub.node_id)
    assert not at.exception
    body = texts(at)
    assert "in part 'vault.md'" in body
    start, end = sub.context_spans[0]
    assert f"chars {start:,}–{end:,} of " in body and "%–" in body
    values = [c.value for c in at.code]
    assert sub.input in values and sub.output in values
    # the slice itself comes from the stored context, with a little text around it
    assert any(v and v in (sub.input or "") and len(v) == end - start for v in values)
    assert any("chars before" in c.value for c in at.caption)


def test_missing_context_blob_is_a_message_not_a_traceback(
    demo: tuple[str, list[Node]], traces_dir: Path
) -> None:
    run_id, nodes = demo
    for blob in (traces_dir / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    sub = of_kind(nodes, "llm_query")[0]
    at = explorer_page(run=run_id, node=sub.node_id)
    assert not at.exception
    assert any("not available" in i.value for i in at.info)


def test_rlm_query_shows_its_position_and_opens_the_child_run() -> None:
    result = RLM("demo/recursive", "demo/sub").run(needle_context(), "What is the secret code?")
    store = TraceStore()
    nodes = store.nodes(result.run_id)
    store.close()
    call = next(n for n in of_kind(nodes, "rlm_query") if n.context_spans)
    at = explorer_page(run=result.run_id, node=call.node_id)
    assert not at.exception
    assert "Question / prompt for the child RLM" in texts(at)
    assert "chars " in texts(at) and " of " in texts(at)
    at.button(key=f"child_{call.node_id}").click().run()
    assert not at.exception
    child = at.query_params["node"]
    assert next(n for n in nodes if n.node_id == child).kind == "run"
    assert any(s.value.startswith("step ") and ": run (depth 1" in s.value for s in at.subheader)


def test_big_texts_are_bounded_with_a_download(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    run_id = new_id()
    big = "".join(f"line {i}\n" for i in range(60_000))  # 500+ KB: kept in a blob
    store.write(
        Node(run_id, run_id, None, "run", 0, 0, status="ok", input="q", meta={"question": "q"})
    )
    cell = Node(
        new_id(),
        run_id,
        run_id,
        "code",
        0,
        1,
        status="ok",
        code="print(big)",
        stdout=big,
        model_view=big[:2000] + "... +N more chars",
    )
    odd = Node(new_id(), run_id, run_id, "code", 0, 2, status="ok", meta={"variables": ["x"]})
    store.write(cell)
    store.write(odd)
    store.close()
    at = explorer_page(run=run_id, node=cell.node_id)
    assert not at.exception
    assert any(f"showing first 200,000 of {len(big):,} chars" in c.value for c in at.caption)
    # the run's export buttons (keys export_*) are always there; one more for the big text
    assert len([b for b in at.get("download_button") if not str(b.key).startswith("export_")]) == 1
    shown = [c.value for c in at.code if c.value.startswith("line 0")]
    assert shown and max(len(v) for v in shown) <= 200_000
    # data in an unexpected shape gives a message, not a traceback
    at = explorer_page(run=run_id, node=odd.node_id)
    assert not at.exception
    assert any("could not be shown" in e.value for e in at.error)


# ---- selecting and stepping ----------------------------------------------------------------


def test_graph_click_selects_the_node_and_updates_the_url(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    target = of_kind(nodes, "code")[1]
    at = explorer_page(run=run_id)
    at.session_state["explorer_graph"] = {"node_click": target.node_id}
    at.run()
    assert not at.exception
    assert at.query_params["node"] == target.node_id
    assert (target.code or "").strip() in [c.value for c in at.code]
    # the click is read before the graph is drawn, so it goes back in the same run
    assert payload(at)["selected"] == target.node_id
    assert step_slider(at).value == sorted(n.node_id for n in nodes).index(target.node_id) + 1


def test_step_buttons_and_slider_follow_execution_order(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    order = sorted(n.node_id for n in nodes)
    at = explorer_page(run=run_id, node=order[0])

    def selected() -> str:
        return str(at.query_params["node"])

    at.button(key="explorer_next").click().run()
    assert selected() == order[1] and not at.exception
    at.button(key="explorer_next").click().run()
    assert selected() == order[2]
    at.button(key="explorer_prev").click().run()
    assert selected() == order[1]
    at.button(key="explorer_last").click().run()
    assert selected() == order[-1]
    assert at.button(key="explorer_next").disabled
    assert step_slider(at).value == len(order)
    at.button(key="explorer_first").click().run()
    assert selected() == order[0] and at.button(key="explorer_prev").disabled
    step_slider(at).set_value(4).run()
    assert selected() == order[3] and not at.exception
    assert step_slider(at).value == 4


def test_grow_toggle_and_play_show_the_graph_up_to_the_step(
    demo: tuple[str, list[Node]],
) -> None:
    run_id, nodes = demo
    order = sorted(n.node_id for n in nodes)
    at = explorer_page(run=run_id, node=order[2])
    assert len(payload(at)["nodes"]) == len(order)
    at.toggle(key="explorer_grow").set_value(True).run()
    assert [n["id"] for n in payload(at)["nodes"]] == order[:3]
    at.toggle(key="explorer_grow").set_value(False).run()
    at.button(key="explorer_last").click().run()
    at.button(key="explorer_play").click().run()  # at the end: replays from the first step
    assert not at.exception
    assert at.query_params["node"] == order[0]
    assert [n["id"] for n in payload(at)["nodes"]] == order[:1]
    assert at.button(key="explorer_play").label.endswith("Pause")
    time.sleep(0.8)
    at.run()
    assert at.query_params["node"] == order[1]
    at.button(key="explorer_play").click().run()  # pause
    assert len(payload(at)["nodes"]) == len(order)


def test_table_filter_and_row_selection(demo: tuple[str, list[Node]]) -> None:
    run_id, nodes = demo
    at = explorer_page(run=run_id)
    table = at.dataframe[-1]
    assert len(table.value) == len(nodes)
    at.multiselect(key=f"explorer_f_kind_{run_id}").set_value(["code"]).run()
    rows = at.dataframe[-1].value
    assert len(rows) == len(of_kind(nodes, "code")) and set(rows["kind"]) == {"code"}
    at.text_input(key=f"explorer_f_text_{run_id}").set_value("llm_query_batched").run()
    assert 0 < len(at.dataframe[-1].value) < len(rows)
    picked = str(at.dataframe[-1].value["node_id"].iloc[0])
    at.session_state[f"explorer_table_{run_id}"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception
    assert at.query_params["node"] == picked
    # the table keeps its selection; stepping on from there is not undone by it
    at.button(key="explorer_next").click().run()
    assert at.query_params["node"] != picked


def test_size_by_changes_the_payload(demo: tuple[str, list[Node]]) -> None:
    run_id, _ = demo
    at = explorer_page(run=run_id)
    by_tokens = {n["id"]: n["size"] for n in payload(at)["nodes"]}
    at.radio(key="explorer_size_by").set_value("cost").run()
    assert not at.exception
    by_cost = {n["id"]: n["size"] for n in payload(at)["nodes"]}
    assert by_tokens != by_cost and len(set(by_cost.values())) == 1  # demo models cost $0


# ---- live runs -----------------------------------------------------------------------------


def test_a_running_run_shows_as_live_and_grows(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    run_id = new_id()
    store.write(
        Node(
            run_id,
            run_id,
            None,
            "run",
            0,
            0,
            input="live?",
            model="demo/root",
            meta={"question": "live?", "root_model": "demo/root"},
        )
    )
    store.close()
    at = explorer_page()
    assert not at.exception
    assert any("still running" in c.value for c in at.caption)
    assert len(payload(at)["nodes"]) == 1
    from ui.common import store as shared  # the page's own store: one writer per DuckDB file

    shared().write(Node(new_id(), run_id, run_id, "lm", 0, 1, input="[]", model="demo/root"))
    at.run()
    assert not at.exception
    assert len(payload(at)["nodes"]) == 2


# ---- untrusted text ------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def test_untrusted_text_never_becomes_html() -> None:
    evil = " ".join(XSS)
    lines = [f"Line {i}: nothing to see here." for i in range(400)]
    context = {
        f"{XSS[1]}.txt": " ".join(lines[:200]),
        "doc.md": " ".join([*lines[200:300], f"The secret code is {evil}.", *lines[300:]]),
    }
    run_id = demo_run(context, f"What is the secret code? {XSS[0]}")
    store = TraceStore()
    nodes = store.nodes(run_id)
    store.close()
    st.cache_resource.clear()
    assert any(XSS[1] in (n.output or "") for n in nodes if n.kind == "llm_query")
    for n in nodes:
        at = explorer_page(run=run_id, node=n.node_id)
        assert not at.exception
        assert not at.get("html") and not at.get("iframe")
        assert "<script" not in at.get("bidi_component")[0].proto.json
        assert "<img" not in at.get("bidi_component")[0].proto.json
        for el in _walk(at._tree):
            proto = getattr(el, "proto", None)
            if proto is not None and getattr(proto, "allow_html", False):
                assert "onerror" not in proto.body and "<script" not in proto.body
            # document text never goes into markdown (alerts, captions, headings) or labels,
            # escaped or not: st.code, st.text and st.json show it as text
            markdown = type(proto).__name__ in ("Markdown", "Heading", "Alert")
            body = str(getattr(proto, "body", "")) if markdown else ""
            assert "alert(1)" not in body + str(getattr(proto, "label", ""))
    shown = texts(explorer_page(run=run_id, node=run_id))
    assert XSS[0] in shown  # shown as plain text, not dropped
