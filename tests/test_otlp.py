"""Live OTLP export: every node of a run reaches a collector on 127.0.0.1 as one span, with the
tree, models, tokens and costs of the store; a slow, failing or absent collector costs the run
nothing but its spans, and those are counted."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, poll
from fake_otlp import FakeCollector, Received
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.exchange.otel import export_otel
from rlm_core.otel_map import OtlpTarget, span_id, trace_id, traces_url
from rlm_core.otlp import SETTLE_S, close_all
from rlm_core.types import Node

TEXT = "Filler line about nothing in particular.\n" * 60 + "The secret code is 4711.\n"
QUESTION = "What is the secret code?"
KEY = "sk-otlp-test-key-0123456789"


@pytest.fixture(autouse=True)
def closed_exporters() -> Iterator[None]:
    """Each test starts without the exporters (one per endpoint and process) of another."""
    close_all(timeout_s=0.5)
    yield
    close_all(timeout_s=0.5)


def _deep_run(traces: Path, endpoint: str) -> tuple[str, list[Node], dict[str, object]]:
    rlm = RLM(
        "demo/recursive",
        "demo/sub",
        child_root_model="demo/root",
        max_depth=2,
        api_key=KEY,
        traces_dir=traces,
        otlp=OtlpTarget(endpoint),
    )
    result = rlm.run(TEXT, QUESTION)
    assert result.status == "ok"
    store = TraceStore(traces)
    try:
        nodes = store.nodes(result.run_id)
    finally:
        store.close()
    root = next(n for n in nodes if n.parent_id is None)
    return result.run_id, nodes, root.meta["otlp"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_spans(spans: list[Received], run_id: str, nodes: list[Node]) -> None:
    """One span per node, no more: the tree, models, tokens and costs of the store."""
    ours = [s for s in spans if s.trace_id == trace_id(run_id)]
    assert sorted(s.span_id for s in ours) == sorted(span_id(n.node_id) for n in nodes)
    by_span = {s.span_id: s for s in ours}
    for node in nodes:
        span = by_span[span_id(node.node_id)]
        attrs = span.attributes
        assert span.parent_span_id == (span_id(node.parent_id) if node.parent_id else "")
        assert attrs["rlm.node_id"] == node.node_id and attrs["rlm.kind"] == node.kind
        assert span.start_ns == int(node.started_at * 1e9)
        assert attrs.get("gen_ai.request.model") == node.model
        assert attrs.get("gen_ai.usage.input_tokens") == node.tokens_in
        assert attrs.get("gen_ai.usage.output_tokens") == node.tokens_out
        assert attrs.get("rlm.cost_usd") == node.cost_usd
        if node.kind in ("lm", "llm_query"):
            assert span.name == f"chat {node.model}" and span.kind == 3  # CLIENT
            assert attrs["gen_ai.operation.name"] == "chat"
        for value in attrs.values():
            assert KEY not in str(value)
    assert {"chat demo/sub", "chat demo/root", "invoke_agent rlm"} <= {s.name for s in ours}


def test_every_node_arrives_once_as_a_span(tmp_path: Path) -> None:
    with FakeCollector() as collector:
        run_id, nodes, otlp = _deep_run(tmp_path / "traces", collector.endpoint)
        assert otlp == {
            "endpoint": traces_url(collector.endpoint),
            "spans": len(nodes),
            "dropped": 0,
            "unconfirmed": 0,
        }
        check_spans(collector.spans, run_id, nodes)
        assert any(n.kind == "rlm_query" for n in nodes) and max(n.depth for n in nodes) >= 1
    # exported later as OTel JSON, the run is the same trace: same ids, names and parents
    store = TraceStore(tmp_path / "traces")
    try:
        (scope,) = export_otel(store, run_id)["resourceSpans"][0]["scopeSpans"]
    finally:
        store.close()
    later = {(s["spanId"], s["name"], s.get("parentSpanId", "")) for s in scope["spans"]}
    assert later == {(s.span_id, s.name, s.parent_span_id) for s in collector.spans}


@pytest.mark.parametrize("collector", ["absent", "refusing", "slow"])
def test_a_bad_collector_never_slows_or_fails_a_run(tmp_path: Path, collector: str) -> None:
    traces = tmp_path / "traces"
    started = time.monotonic()
    RLM("demo/root", "demo/sub", traces_dir=traces).run(TEXT, QUESTION)
    plain_s = time.monotonic() - started
    if collector == "absent":
        endpoint, server = f"http://127.0.0.1:{_free_port()}", None
    else:
        slow = collector == "slow"
        server = FakeCollector(delay_s=30.0 if slow else 0.0, status=200 if slow else 400)
        endpoint = server.__enter__().endpoint
    try:
        started = time.monotonic()
        result = RLM("demo/root", "demo/sub", traces_dir=traces, otlp=OtlpTarget(endpoint)).run(
            TEXT, QUESTION
        )
        took = time.monotonic() - started
        assert result.status == "ok" and "4711" in (result.answer or "")
        # the run waits for the collector's answer at most SETTLE_S after it ends
        assert took < plain_s + SETTLE_S + 2.0
        store = TraceStore(traces)
        try:
            nodes = store.nodes(result.run_id)
        finally:
            store.close()
        otlp = next(n for n in nodes if n.parent_id is None).meta["otlp"]
        assert otlp["spans"] == len(nodes)
        assert otlp["dropped"] + otlp["unconfirmed"] == len(nodes)
        if collector == "refusing":
            # a 400 is not retried: lost and counted; once the collector failed, the end of the
            # run no longer waits for the last batch's answer
            assert otlp["dropped"] > 0
    finally:
        totals = close_all(timeout_s=0.5)
        if server is not None:
            server.__exit__()
    tally = totals[traces_url(endpoint)]
    assert tally.sent == len(nodes) and tally.delivered == 0 and tally.failed == len(nodes)


def test_cli_run_sends_spans_and_prints_what_was_lost(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT, encoding="utf-8")
    traces = tmp_path / "traces"
    with FakeCollector() as collector:
        out = subprocess.run(
            [
                *(sys.executable, "-m", "rlm_core", "run", "--context", str(doc)),
                *("--query", QUESTION, "--root-model", "demo/root", "--sub-model", "demo/sub"),
                *("--traces-dir", str(traces), "--otlp-endpoint", collector.endpoint),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        store = TraceStore(traces)
        try:
            (run,) = store.list_runs()
            nodes = store.nodes(run.run_id)
        finally:
            store.close()
        check_spans(collector.spans, run.run_id, nodes)
    assert f"OTLP: {len(nodes)} spans sent to {traces_url(collector.endpoint)}, 0 lost" in (
        out.stderr
    )


def test_settings_endpoint_reaches_runs_of_the_run_page(fresh_app: None) -> None:
    with FakeCollector() as collector:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("pages/5_Settings.py").run()
        at.text_input(key="set_otlp").set_value("ftp://collector").run()
        assert any("OTLP endpoint is an http" in e.value for e in at.error)
        at.text_input(key="set_otlp").set_value(collector.endpoint).run()
        port = collector.endpoint.rsplit(":", 1)[1]
        assert any("Spans go to" in c.value and port in c.value for c in at.caption)
        at.switch_page("app.py").run()
        at.button(key="run_button").click().run()
        at = poll(at, lambda a: bool(a.success), "the run did not finish")
        run_id = at.session_state["current_run"]
        deadline = time.monotonic() + 10
        while not any(s.attributes["rlm.node_id"] == run_id for s in collector.spans):
            assert time.monotonic() < deadline, "the run's span did not arrive"
            time.sleep(0.1)
        assert {s.trace_id for s in collector.spans} == {trace_id(run_id)}
