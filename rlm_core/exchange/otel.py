"""A run as OpenTelemetry JSON (OTLP/JSON traces): one span per node with the GenAI semantic
convention attributes (`gen_ai.operation.name`, `gen_ai.request.model`, usage) plus `rlm.*`."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rlm_core.exchange.jsonl import FORMAT
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node

_SPAN_KIND_INTERNAL = 1
_SPAN_KIND_CLIENT = 3
_STATUS_ERROR = 2


def _hex_id(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def _attr(key: str, value: Any) -> dict[str, Any]:
    # OTLP/JSON: 64-bit integers travel as strings (protobuf JSON mapping)
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _operation(node: Node) -> tuple[str, dict[str, Any], int]:
    """Span name, GenAI attributes and span kind of a node (OTel GenAI semantic conventions)."""
    if node.kind in ("lm", "llm_query"):
        model = node.model or "unknown"
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if "/" in model:
            attrs["gen_ai.provider.name"] = model.split("/", 1)[0]
        return f"chat {model}", attrs, _SPAN_KIND_CLIENT
    if node.kind == "code":
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "execute_code"}
        return "execute_tool execute_code", attrs, _SPAN_KIND_INTERNAL
    if node.kind in ("run", "rlm_query"):
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "rlm"}
        return "invoke_agent rlm", attrs, _SPAN_KIND_INTERNAL
    return "final_answer", {}, _SPAN_KIND_INTERNAL


def _span(node: Node, trace_id: str) -> dict[str, Any]:
    name, attrs, kind = _operation(node)
    if node.model:
        attrs["gen_ai.request.model"] = node.model
    if node.tokens_in is not None:
        attrs["gen_ai.usage.input_tokens"] = node.tokens_in
    if node.tokens_out is not None:
        attrs["gen_ai.usage.output_tokens"] = node.tokens_out
    attrs["rlm.node_id"] = node.node_id
    attrs["rlm.kind"] = node.kind
    attrs["rlm.depth"] = node.depth
    attrs["rlm.status"] = node.status
    attrs["rlm.context_spans"] = json.dumps(node.context_spans)
    if node.cost_usd is not None:
        attrs["rlm.cost_usd"] = float(node.cost_usd)
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": _hex_id(node.node_id, 16),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(int(node.started_at * 1e9)),
        "endTimeUnixNano": str(int((node.ended_at or node.started_at) * 1e9)),
        "status": {},
    }
    if node.parent_id:
        span["parentSpanId"] = _hex_id(node.parent_id, 16)
    if node.status == "error":
        attrs["error.type"] = "_OTHER"
        span["status"] = {"code": _STATUS_ERROR, "message": node.error or "error"}
    span["attributes"] = [_attr(k, v) for k, v in attrs.items()]
    return span


def export_otel(store: TraceStore, run_id: str) -> dict[str, Any]:
    """The run as OTLP/JSON traces: one span per node, GenAI semantic-convention attributes."""
    nodes = store.nodes(run_id)  # spans carry no texts, so previews do
    if not nodes:
        raise ValueError(f"no run with id {run_id}")
    trace_id = _hex_id(run_id, 32)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "rlm-tracer")]},
                "scopeSpans": [
                    {
                        "scope": {"name": "rlm-tracer", "version": FORMAT},
                        "spans": [_span(n, trace_id) for n in nodes],
                    }
                ],
            }
        ]
    }
