"""Export (JSONL, HTML, OTel) and import (our JSONL, rlms RLMLogger logs) of runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Guard, launch, needs_chromium

from rlm_core import RLM, TraceStore
from rlm_core.exchange.html import export_html
from rlm_core.exchange.jsonl import export_jsonl, import_file
from rlm_core.exchange.otel import export_otel
from rlm_core.exchange.rlms import ImportFormatError, RunExists
from rlm_core.types import Node, new_id

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-KEY"
EVIL = "<script>window.__xss=1</script> <img src=x onerror=window.__xss=2>"
TEXT = (
    f"{EVIL}\n" + "Filler line about nothing in particular.\n" * 40 + "The secret code is 4711.\n"
)
QUESTION = "What is the secret code?"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two real demo runs (plain, and depth-2 recursion) in a traces dir of their own."""
    traces = tmp_path_factory.mktemp("source") / "traces"
    plain = RLM("demo/root", "demo/sub", api_key=KEY, traces_dir=traces).run(TEXT, QUESTION)
    deep = RLM(
        "demo/recursive",
        "demo/sub",
        child_root_model="demo/root",
        max_depth=2,
        api_key=KEY,
        traces_dir=traces,
    ).run(TEXT, QUESTION)
    assert plain.status == deep.status == "ok"
    store = TraceStore(traces)
    try:
        runs = {}
        for result in (plain, deep):
            rid = result.run_id
            runs[rid] = {
                "nodes": [n.to_dict() for n in store.nodes(rid)],
                "jsonl": export_jsonl(store, rid),
                "html": export_html(store, rid),
                "otel": export_otel(store, rid),
                "contexts": {
                    n.node_id: store.context(n.node_id) for n in store.nodes(rid) if n.kind == "run"
                },
            }
    finally:
        store.close()
    yield {"dir": traces, "plain": plain.run_id, "deep": deep.run_id, "runs": runs}


def _fresh(tmp_path: Path, name: str = "fresh") -> TraceStore:
    return TraceStore(tmp_path / name)


# ---- our JSONL -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["plain", "deep"])
def test_jsonl_round_trip_gives_the_same_trace(
    source: dict[str, Any], tmp_path: Path, which: str
) -> None:
    rid = source[which]
    run = source["runs"][rid]
    header = json.loads(run["jsonl"].splitlines()[0])
    assert header["format"] == "rlm-tracer/1" and header["run_id"] == rid
    store = _fresh(tmp_path)
    try:
        report = import_file(store, run["jsonl"])
        assert (report.run_id, report.nodes, report.skipped) == (rid, len(run["nodes"]), [])
        nodes = [n.to_dict() for n in store.nodes(rid)]
        # the one addition: the root run says where it came from
        assert nodes[0]["meta"].pop("imported_from") == "rlm-tracer-jsonl"
        assert nodes == run["nodes"]
        for node_id, context in run["contexts"].items():
            assert context is not None and store.context(node_id) == context
        assert [r.run_id for r in store.list_runs()] == [rid]
        assert store.get_run(rid).question == QUESTION  # type: ignore[union-attr]
    finally:
        store.close()
    if which == "deep":
        kinds = {n["kind"] for n in run["nodes"]}
        assert {"rlm_query", "llm_query"} <= kinds
        assert len(run["contexts"]) > 1  # the child runs' contexts travel too


def _write_run(store: TraceStore, output: str, *, status: str = "ok") -> str:
    rid = new_id()
    root = Node(rid, rid, None, "run", 0, 0, status="ok", input="q", meta={"question": "q"})
    child = Node(new_id(), rid, rid, "lm", 0, 1, status=status, model="demo/root", output=output)  # type: ignore[arg-type]
    child.error = "model blew up" if status == "error" else None
    child.ended_at = child.started_at + 1.5
    for node in (root, child):
        store.write(node)
    store.flush()
    return rid


def test_big_texts_survive_the_round_trip(tmp_path: Path) -> None:
    big = "x" * 100_000 + "</script>"
    store = _fresh(tmp_path, "a")
    try:
        rid = _write_run(store, big)
        before = [n.to_dict() for n in store.nodes(rid)]
        assert "blobs" in before[1]["meta"]  # stored as a blob, the row keeps a preview
        text = export_jsonl(store, rid)
    finally:
        store.close()
    fresh = _fresh(tmp_path, "b")
    try:
        import_file(fresh, text)
        after = [n.to_dict() for n in fresh.nodes(rid)]
        after[0]["meta"].pop("imported_from")
        assert after == before
        assert fresh.node(before[1]["node_id"]).output == big  # type: ignore[union-attr]
    finally:
        fresh.close()


def test_existing_run_is_refused_unless_replace(source: dict[str, Any], tmp_path: Path) -> None:
    text = source["runs"][source["plain"]]["jsonl"]
    store = _fresh(tmp_path)
    try:
        import_file(store, text)
        with pytest.raises(RunExists, match="replace"):
            import_file(store, text)
        report = import_file(store, text, replace=True)
        assert report.nodes == len(store.nodes(source["plain"]))
        assert len(store.list_runs()) == 1
    finally:
        store.close()


def test_bad_lines_of_our_jsonl_are_reported(source: dict[str, Any], tmp_path: Path) -> None:
    lines = source["runs"][source["plain"]]["jsonl"].splitlines()
    stranger = json.loads(lines[2]) | {"run_id": "someone-else"}
    text = "\n".join([*lines[:3], "garbage", json.dumps(stranger), *lines[3:]])[:-5]
    store = _fresh(tmp_path)
    try:
        report = import_file(store, text)
    finally:
        store.close()
    assert report.skipped[0].startswith("line 4: not JSON")
    assert report.skipped[1].startswith("line 5: not a node of this run")
    assert "truncated" in report.skipped[2]  # the context blob line lost its end


def test_unknown_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    store = _fresh(tmp_path)
    try:
        with pytest.raises(ImportFormatError, match="cannot read"):
            import_file(store, tmp_path / "nope.jsonl")
        with pytest.raises(ImportFormatError, match="unrecognised"):
            import_file(store, '{"hello": 1}\n')
        with pytest.raises(ImportFormatError, match="no valid JSON"):
            import_file(store, "not json\n")
    finally:
        store.close()


# ---- keys never leave ------------------------------------------------------------------------


def test_no_export_contains_the_api_key(source: dict[str, Any]) -> None:
    for run in source["runs"].values():
        for text in (run["jsonl"], run["html"], json.dumps(run["otel"])):
            assert KEY not in text
    journals = list((source["dir"] / "journal").glob("*.jsonl"))
    assert journals and all(KEY not in p.read_text() for p in journals)


# ---- OpenTelemetry ---------------------------------------------------------------------------


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def test_otel_spans_follow_the_genai_conventions(source: dict[str, Any]) -> None:
    run = source["runs"][source["deep"]]
    (resource,) = run["otel"]["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    spans = scope["spans"]
    nodes = {n["node_id"]: n for n in run["nodes"]}
    assert len(spans) == len(nodes)
    assert len({s["traceId"] for s in spans}) == 1
    assert re.fullmatch("[0-9a-f]{32}", spans[0]["traceId"])
    by_node = {_attrs(s)["rlm.node_id"]: s for s in spans}
    assert len({s["spanId"] for s in spans}) == len(spans)
    for node_id, span in by_node.items():
        node, attrs = nodes[node_id], _attrs(span)
        assert re.fullmatch("[0-9a-f]{16}", span["spanId"])
        if node["parent_id"] is None:
            assert "parentSpanId" not in span
        else:
            assert span["parentSpanId"] == by_node[node["parent_id"]]["spanId"]
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 10**18
        assert attrs["rlm.kind"] == node["kind"] and attrs["rlm.status"] == node["status"]
        assert int(attrs["rlm.depth"]) == node["depth"]
        assert json.loads(attrs["rlm.context_spans"]) == node["context_spans"]
        assert ("rlm.cost_usd" in attrs) == (node["cost_usd"] is not None)
        if node["kind"] in ("lm", "llm_query"):
            assert span["name"] == f"chat {node['model']}" and span["kind"] == 3
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.request.model"] == node["model"]
            assert int(attrs["gen_ai.usage.input_tokens"]) == node["tokens_in"]
            assert int(attrs["gen_ai.usage.output_tokens"]) == node["tokens_out"]
        elif node["kind"] == "code":
            assert span["name"] == "execute_tool execute_code"
            assert attrs["gen_ai.operation.name"] == "execute_tool"
        elif node["kind"] in ("run", "rlm_query"):
            assert span["name"] == "invoke_agent rlm"
            assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert {"chat demo/sub", "chat demo/root", "invoke_agent rlm"} <= {s["name"] for s in spans}


def test_otel_marks_error_nodes(tmp_path: Path) -> None:
    store = _fresh(tmp_path)
    try:
        rid = _write_run(store, "partial", status="error")
        spans = export_otel(store, rid)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    finally:
        store.close()
    assert spans[0]["status"] == {}
    assert spans[1]["status"] == {"code": 2, "message": "model blew up"}
    assert _attrs(spans[1])["error.type"] == "_OTHER"
    assert "rlm.cost_usd" not in _attrs(spans[1])  # unknown cost is left out, not zero


# ---- HTML ------------------------------------------------------------------------------------


def _details(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="rlm-node-data">(.*?)</script>', page)
    assert match
    return dict(json.loads(match.group(1)))


def test_html_is_self_contained_and_inert(source: dict[str, Any]) -> None:
    run = source["runs"][source["plain"]]
    page = run["html"]
    assert "<script>window.__xss" not in page and "<img src=x" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    details = _details(page)
    assert set(details) == {n["node_id"] for n in run["nodes"]}
    assert any(EVIL in (d["stdout"] or "") for d in details.values())  # the payload is in there


@pytest.mark.browser
@needs_chromium
def test_html_opens_offline_and_shows_a_clicked_node(
    source: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    run = source["runs"][source["plain"]]
    path = tmp_path / "run.html"
    path.write_text(run["html"], encoding="utf-8")
    target = next(d for d in _details(run["html"]).values() if EVIL in (d["stdout"] or ""))
    guard = Guard(allowed=(path.as_uri(),))
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", guard)
            page.goto(path.as_uri())
            count = len(run["nodes"])
            page.wait_for_function(
                f"typeof network !== 'undefined' && network.body.data.nodes.length === {count}"
            )
            point = page.evaluate(
                """(id) => {
                  const pos = network.getPositions([id])[id];
                  network.moveTo({position: pos, scale: 1.5});
                  const p = network.canvasToDOM(pos);
                  const r = network.body.container.querySelector("canvas").getBoundingClientRect();
                  return {x: r.left + p.x, y: r.top + p.y};
                }""",
                target["node_id"],
            )
            page.mouse.click(point["x"], point["y"])
            inspector = page.locator("#rlm-inspector-body")
            inspector.get_by_text(target["node_id"]).wait_for(timeout=5_000)
            assert EVIL in inspector.inner_text()
            assert page.evaluate("window.__xss") is None
            assert page.locator("#rlm-inspector img, #rlm-inspector script").count() == 0
        finally:
            browser.close()
    assert guard.local == [path.as_uri()] and guard.foreign == []


# ---- rlms RLMLogger logs ---------------------------------------------------------------------


# Built from the field names of alexzhang13/rlm, not from a captured log:
#   rlm/logger/rlm_logger.py @ cde7ee1185a39edba4bc123da4f0fd1fa2a7e98c ("metadata",
#     "run_context" and "iteration" entries with "type", "timestamp", "iteration"),
#   rlm/core/types.py @ 4878c1037b4406a253fb424998880e43a96d0728 and @ 056fc96c1b4c
#     (RLMMetadata, RLMIteration, CodeBlock, REPLResult, RLMChatCompletion incl. error fields),
#   rlm/core/rlm.py @ 04368b2d2ccc29938ce711d5302209fe05c512e3 (a child RLM's trajectory in
#     RLMChatCompletion.metadata = {"run_metadata", "iterations"}).
def _usage(model: str, tin: int, tout: int) -> dict[str, Any]:
    summary = {"total_calls": 1, "total_input_tokens": tin, "total_output_tokens": tout}
    return {"model_usage_summaries": {model: summary}}


def _result(stdout: str = "", stderr: str = "", calls: list[Any] | None = None) -> dict[str, Any]:
    return {
        "stdout": stdout,
        "stderr": stderr,
        "execution_time": 0.25,
        "rlm_calls": calls or [],
        "locals": {"context": "The secret code is 4711.", "n": 3},
    }


def _iteration(n: int, response: str, blocks: list[Any], final: Any = None) -> dict[str, Any]:
    return {
        "type": "iteration",
        "iteration": n,
        "timestamp": f"2025-03-04T10:00:0{n}.500000",
        "prompt": [
            {"role": "system", "content": "You are an RLM."},
            {"role": "user", "content": f"Iteration {n}: {EVIL}"},
        ],
        "response": response,
        "code_blocks": blocks,
        "final_answer": final,
        "iteration_time": 0.9,
    }


def rlms_log() -> str:
    child = _iteration(
        1,
        "```repl\nx = 1\n```\nFINAL(child says 4711)",
        [{"code": "x = 1", "result": _result()}],
        final="child says 4711",
    )
    calls = [
        {
            "root_model": "gpt-5-mini",
            "prompt": "Find the code in: The secret code is 4711.",
            "response": "4711",
            "usage_summary": _usage("gpt-5-mini", 120, 8),
            "execution_time": 0.4,
        },
        {
            "root_model": "gpt-5-mini",
            "prompt": "again",
            "response": "",
            "usage_summary": {"model_usage_summaries": {}},
            "execution_time": 0.1,
            "error": "rate limited",
            "error_type": "RateLimitError",
            "status_code": 429,
        },
        {
            "root_model": "gpt-5-nano",
            "prompt": "a chunk for a child",
            "response": "child says 4711",
            "usage_summary": _usage("gpt-5-nano", 300, 20),
            "execution_time": 0.6,
            "metadata": {
                "run_metadata": {"root_model": "gpt-5-nano", "max_depth": 2},
                "iterations": [child],
            },
        },
    ]
    entries = [
        {
            "type": "metadata",
            "timestamp": "2025-03-04T10:00:00",
            "root_model": "gpt-5",
            "max_depth": 2,
            "max_iterations": 30,
            "backend": "openai",
            "backend_kwargs": {"model_name": "gpt-5"},
            "environment_type": "local",
            "environment_kwargs": {},
            "other_backends": ["openai"],
        },
        {
            "type": "run_context",
            "timestamp": "2025-03-04T10:00:00.100000",
            "prompt": "The secret code is 4711.",
            "root_prompt": QUESTION,
            "environment_type": "local",
            "environment_kwargs": {},
            "session_mode": False,
        },
        _iteration(
            1,
            "Look first.\n```repl\nprint(context[:40])\n```",
            [
                {"code": "print(context[:40])", "result": _result("The secret code is 4711.\n")},
            ],
        ),
        _iteration(
            2,
            "Ask the sub models.\n```repl\nanswers = ...\n```",
            [
                {
                    "code": "answers = [llm_query(c) for c in cs]",
                    "result": _result("ok\n", calls=calls),
                },
                {"code": "y", "result": _result(stderr="NameError: name 'y' is not defined")},
            ],
        ),
        _iteration(3, "FINAL(4711)", [], final="4711"),
    ]
    lines = [json.dumps(e) for e in entries]
    torn = json.dumps(_iteration(4, "late", []))[:50]  # the writer died mid-line
    return "\n".join([*lines, "this line is not JSON", torn])


def test_rlms_log_becomes_a_run_tree(tmp_path: Path) -> None:
    log = tmp_path / "rlm_2025-03-04_10-00-00_abcd1234.jsonl"
    log.write_text(rlms_log())
    store = _fresh(tmp_path)
    try:
        report = import_file(store, log)
        rid = report.run_id
        nodes = [n for n in (store.node(m.node_id) for m in store.nodes(rid)) if n is not None]
        run = store.get_run(rid)
        listed = [r.run_id for r in store.list_runs()]
        context = store.context(rid)
    finally:
        store.close()
    assert report.format == "rlms-logger"
    assert report.skipped == [
        "line 6: not JSON (Expecting value)",
        "line 7: truncated: the file ends inside this line",
    ]
    assert listed == [rid] and run is not None
    assert (run.question, run.answer, run.status) == (QUESTION, "4711", "ok")
    assert run.root_model == "gpt-5" and context == "The secret code is 4711."
    by_kind: dict[str, list[Node]] = {}
    for n in nodes:
        by_kind.setdefault(n.kind, []).append(n)
    assert report.nodes == len(nodes) == 15
    root = by_kind["run"][0]
    assert root.node_id == rid and root.parent_id is None
    assert root.meta["imported_from"] == "rlms-logger" and root.meta["config"]["max_depth"] == 2
    lm1 = by_kind["lm"][0]
    assert lm1.model == "gpt-5" and lm1.parent_id == rid
    assert json.loads(lm1.input or "")[1]["content"] == f"Iteration 1: {EVIL}"
    code1 = by_kind["code"][0]
    assert code1.stdout == "The secret code is 4711.\n" and code1.code == "print(context[:40])"
    assert code1.meta["variables"] == {"context": "str, 24 chars", "n": "int"}
    ok_call, failed_call = by_kind["llm_query"]
    assert (ok_call.model, ok_call.tokens_in, ok_call.tokens_out) == ("gpt-5-mini", 120, 8)
    assert (
        ok_call.input == "Find the code in: The secret code is 4711." and ok_call.output == "4711"
    )
    assert ok_call.parent_id == by_kind["code"][1].node_id and ok_call.depth == 1
    assert failed_call.status == "error" and failed_call.error == "rate limited"
    (query,) = by_kind["rlm_query"]
    child = next(n for n in by_kind["run"] if n.parent_id == query.node_id)
    assert (query.model, query.tokens_in, query.output) == ("gpt-5-nano", 300, "child says 4711")
    assert child.depth == 1 and child.output == "child says 4711" and child.model == "gpt-5-nano"
    assert [n.parent_id for n in by_kind["final"]] == [child.node_id, rid]
    broken = next(n for n in by_kind["code"] if n.code == "y")
    assert broken.status == "error" and "NameError" in (broken.error or "")
    assert [n.node_id for n in nodes] == sorted(n.node_id for n in nodes)  # execution order


def test_rlms_log_without_a_final_answer_is_interrupted(tmp_path: Path) -> None:
    lines = rlms_log().splitlines()[:3]  # metadata, run_context, the first iteration
    store = _fresh(tmp_path)
    try:
        report = import_file(store, "\n".join(lines) + "\n")
        run = store.get_run(report.run_id)
    finally:
        store.close()
    assert report.skipped == [] and run is not None
    assert run.status == "interrupted" and run.answer is None


# ---- CLI -------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_export_and_import(source: dict[str, Any], tmp_path: Path) -> None:
    rid, src, dst = source["deep"], str(source["dir"]), str(tmp_path / "dst")
    for fmt in ("jsonl", "html", "otel"):
        out = tmp_path / f"run.{fmt}"
        done = _cli("export", rid, "--format", fmt, "-o", str(out), "--traces-dir", src)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_size > 0
    assert json.loads((tmp_path / "run.otel").read_text())["resourceSpans"]
    done = _cli("import", str(tmp_path / "run.jsonl"), "--traces-dir", dst)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == rid and "nothing skipped" in done.stderr
    again = _cli("import", str(tmp_path / "run.jsonl"), "--traces-dir", dst)
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "--replace" in again.stderr
    assert (
        _cli("import", str(tmp_path / "run.jsonl"), "--replace", "--traces-dir", dst).returncode
        == 0
    )
    log = tmp_path / "rlms.jsonl"
    log.write_text(rlms_log())
    done = _cli("import", str(log), "--traces-dir", dst)
    assert done.returncode == 0 and "2 skipped" in done.stderr and "line 7" in done.stderr


@pytest.mark.parametrize("content", [None, "", "garbage\n", '{"a": 1}\n'])
def test_cli_import_of_a_bad_file_is_one_error_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    done = _cli("import", str(path), "--traces-dir", str(tmp_path / "t"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_cli_export_of_an_unknown_run(tmp_path: Path) -> None:
    done = _cli("export", "nope", "--traces-dir", str(tmp_path / "t"))
    assert done.returncode == 2 and done.stderr == "error: no run with id nope\n"
