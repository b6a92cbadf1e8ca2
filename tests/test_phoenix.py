"""A run sent live to a real trace server, Arize Phoenix started by the test, arrives whole: the
tree, models, tokens and costs, read back through Phoenix's API. Phoenix lives in a venv of its
own (`bash scripts/phoenix_venv.sh`, which scripts/test.sh runs); without it this is skipped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from phoenix_server import Phoenix, venv

from rlm_core import RLM, TraceStore
from rlm_core.otel_map import OtlpTarget, span_id, trace_id
from rlm_core.otlp import close_all

pytestmark = pytest.mark.skipif(
    not (venv() / "bin" / "phoenix").exists(),
    reason="no Phoenix venv: run `bash scripts/phoenix_venv.sh` (scripts/test.sh does)",
)
TEXT = "Filler line about nothing in particular.\n" * 60 + "The secret code is 4711.\n"
ARRIVAL_S = 30.0


def test_a_run_arrives_whole_in_phoenix(tmp_path: Path) -> None:
    (tmp_path / "phoenix").mkdir()
    with Phoenix(tmp_path / "phoenix") as phoenix:
        result = RLM(
            "demo/recursive",
            "demo/sub",
            child_root_model="demo/root",
            max_depth=2,
            traces_dir=tmp_path / "traces",
            otlp=OtlpTarget(phoenix.base),
        ).run(TEXT, "What is the secret code?")
        close_all(timeout_s=5.0)
        store = TraceStore(tmp_path / "traces")
        try:
            nodes = store.nodes(result.run_id)
        finally:
            store.close()
        deadline = time.monotonic() + ARRIVAL_S
        while len(spans := phoenix.spans()) < len(nodes) and time.monotonic() < deadline:
            time.sleep(0.5)  # Phoenix writes what it received in the background
    assert result.status == "ok" and nodes[0].meta["otlp"]["dropped"] == 0
    assert {s["context"]["trace_id"] for s in spans} == {trace_id(result.run_id)}
    by_span = {s["context"]["span_id"]: s for s in spans}
    assert len(spans) == len(by_span) == len(nodes)  # none lost, none twice
    for node in nodes:
        span = by_span[span_id(node.node_id)]
        attrs = span["attributes"]
        assert span["parent_id"] == (span_id(node.parent_id) if node.parent_id else None)
        assert attrs["rlm.node_id"] == node.node_id and attrs["rlm.kind"] == node.kind
        assert attrs.get("gen_ai.request.model") == node.model
        assert attrs.get("gen_ai.usage.input_tokens") == node.tokens_in
        assert attrs.get("gen_ai.usage.output_tokens") == node.tokens_out
        assert attrs.get("rlm.cost_usd") == node.cost_usd
    kinds = {s["span_kind"] for s in spans}
    assert {"LLM", "TOOL", "AGENT"} <= kinds  # Phoenix read the GenAI operation names
