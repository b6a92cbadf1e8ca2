"""A node as an OpenTelemetry span: name, kind, ids and attributes (the GenAI semantic conventions
plus `rlm.*`). The one home of "node -> span", shared by the OTel JSON export (exchange/otel.py)
and the live OTLP export (otlp.py); it imports no OpenTelemetry package.

Ids are derived, not drawn: a run's trace id and a node's span id are hashes of their ids, so
the same run exported twice, live or from the store, is the same trace.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rlm_core.types import Node

SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3
"""OTLP's numbering of span kinds (the SDK's SpanKind enum counts from 0)."""
SERVICE_NAME = "rlm-tracer"
TRACES_PATH = "/v1/traces"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS_ENV = "OTEL_EXPORTER_OTLP_HEADERS"


def hex_id(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def trace_id(run_id: str) -> str:
    """32 hex digits: the trace of a run tree."""
    return hex_id(run_id, 32)


def span_id(node_id: str) -> str:
    """16 hex digits: the span of a node."""
    return hex_id(node_id, 16)


@dataclass(frozen=True)
class SpanData:
    """What a span says about a node, in plain values."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, str | int | float | bool]
    error: str | None
    """The status message when the node failed (span status ERROR), else None."""


def _operation(node: Node) -> tuple[str, dict[str, Any], int]:
    """Span name, GenAI attributes and span kind of a node (OTel GenAI semantic conventions)."""
    if node.kind in ("lm", "llm_query"):
        model = node.model or "unknown"
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if "/" in model:
            attrs["gen_ai.provider.name"] = model.split("/", 1)[0]
        return f"chat {model}", attrs, SPAN_KIND_CLIENT
    if node.kind == "code":
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "execute_code"}
        return "execute_tool execute_code", attrs, SPAN_KIND_INTERNAL
    if node.kind in ("run", "rlm_query"):
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "rlm"}
        return "invoke_agent rlm", attrs, SPAN_KIND_INTERNAL
    return "final_answer", {}, SPAN_KIND_INTERNAL


def span_of(node: Node) -> SpanData:
    """The span of a node: the run's trace, the parent's span, its times and attributes."""
    name, attrs, kind = _operation(node)
    if node.model:
        attrs["gen_ai.request.model"] = node.model
    if node.tokens_in is not None:
        attrs["gen_ai.usage.input_tokens"] = node.tokens_in
    if node.tokens_out is not None:
        attrs["gen_ai.usage.output_tokens"] = node.tokens_out
    attrs["rlm.node_id"] = node.node_id
    attrs["rlm.run_id"] = node.run_id
    attrs["rlm.kind"] = node.kind
    attrs["rlm.depth"] = node.depth
    attrs["rlm.status"] = node.status
    attrs["rlm.context_spans"] = json.dumps(node.context_spans)
    if node.cost_usd is not None:
        attrs["rlm.cost_usd"] = float(node.cost_usd)
    error = None
    if node.status == "error":
        attrs["error.type"] = "_OTHER"
        error = node.error or "error"
    return SpanData(
        name=name,
        kind=kind,
        trace_id=trace_id(node.run_id),
        span_id=span_id(node.node_id),
        parent_span_id=span_id(node.parent_id) if node.parent_id else None,
        start_ns=int(node.started_at * 1e9),
        end_ns=int((node.ended_at or node.started_at) * 1e9),
        attributes=attrs,
        error=error,
    )


# ---- where spans go -------------------------------------------------------------------------


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of an endpoint: a base URL (as in OTEL_EXPORTER_OTLP_ENDPOINT,
    e.g. `http://127.0.0.1:6006`) gets `/v1/traces`; a URL that ends with it is kept."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an OTLP endpoint is an http(s) URL, not {endpoint[:80]!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def shown(url: str) -> str:
    """A URL as recorded and printed: without a user, password or query (they may hold keys)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class OtlpTarget:
    """Where spans go: plain data, so it travels with an evaluation's rows to other machines.
    `headers` (e.g. a Langfuse key) reach the collector only, never a trace."""

    endpoint: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        traces_url(self.endpoint)  # a bad URL is refused before anything runs

    @classmethod
    def given(cls, endpoint: str | None) -> OtlpTarget | None:
        """The target for `--otlp-endpoint` (else OTEL_EXPORTER_OTLP_ENDPOINT), with the
        headers of OTEL_EXPORTER_OTLP_HEADERS; None when neither names an endpoint."""
        endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or None
        if endpoint is None:
            return None
        return cls(endpoint, _headers(os.environ.get(HEADERS_ENV, "")))


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    """`key=value,key2=value2`, URL-encoded, as the OTLP exporter specification writes them."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return tuple(sorted((unquote(k).strip(), unquote(v).strip()) for k, v in pairs))


def add_otlp_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="also send every node, as it ends, as a span to this OTLP/HTTP collector (e.g. "
        f"Phoenix at http://127.0.0.1:6006); default: ${ENDPOINT_ENV}, headers from "
        f"${HEADERS_ENV}",
    )
