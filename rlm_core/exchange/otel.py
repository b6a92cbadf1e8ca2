"""A run as OpenTelemetry JSON (OTLP/JSON traces): one span per node with the GenAI semantic
convention attributes (`gen_ai.operation.name`, `gen_ai.request.model`, usage) plus `rlm.*`.
What each span says comes from `rlm_core.otel_map`, as for the live OTLP export."""

from __future__ import annotations

from typing import Any

from rlm_core.exchange.jsonl import FORMAT
from rlm_core.otel_map import SERVICE_NAME, SpanData, span_of
from rlm_core.store.trace_store import TraceStore

_STATUS_ERROR = 2


def _attr(key: str, value: Any) -> dict[str, Any]:
    # OTLP/JSON: 64-bit integers travel as strings (protobuf JSON mapping)
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _span(data: SpanData) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": data.trace_id,
        "spanId": data.span_id,
        "name": data.name,
        "kind": data.kind,
        "startTimeUnixNano": str(data.start_ns),
        "endTimeUnixNano": str(data.end_ns),
        "status": {} if data.error is None else {"code": _STATUS_ERROR, "message": data.error},
    }
    if data.parent_span_id:
        span["parentSpanId"] = data.parent_span_id
    span["attributes"] = [_attr(k, v) for k, v in data.attributes.items()]
    return span


def export_otel(store: TraceStore, run_id: str) -> dict[str, Any]:
    """The run as OTLP/JSON traces: one span per node, GenAI semantic-convention attributes."""
    nodes = store.nodes(run_id)  # spans carry no texts, so previews do
    if not nodes:
        raise ValueError(f"no run with id {run_id}")
    spans = [_span(span_of(n)) for n in nodes]
    scope = {"name": SERVICE_NAME, "version": FORMAT}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", SERVICE_NAME)]},
                "scopeSpans": [{"scope": scope, "spans": spans}],
            }
        ]
    }
