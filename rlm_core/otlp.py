"""Live OTLP/HTTP export: each node goes out as a span when it ends, while the run goes, through
the OpenTelemetry SDK's batch span processor (its own thread, a bounded queue), so a slow or
absent collector never slows or fails a run. What the collector did not confirm is counted.

What a span says is `otel_map`'s (GenAI semantic conventions, ids derived from the node's). One
exporter per endpoint and process is shared by every run tree; `OtlpSink` is one tree's tracer
sink. Importing this module imports the SDK (about 0.2 s): the engine does it only when asked to
export.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from rlm_core.otel_map import SERVICE_NAME, OtlpTarget, shown, span_of, trace_id, traces_url
from rlm_core.types import Node

SETTLE_S = 1.0
"""How long the end of a run waits for the collector to confirm its spans: a healthy one needs
a few tens of ms; a slow or absent one costs the run this much and no more."""
REQUEST_TIMEOUT_S = 5.0
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
SCHEDULE_MS = 100
"""The processor sends what it holds this often (the SDK's default, 5 s, would leave a run's
last spans waiting long after the run)."""
QUEUE_SPANS = 8192
"""Spans waiting for a slow collector; beyond that the oldest are dropped (and counted)."""


@dataclass
class Tally:
    """Spans of one run tree: handed to the exporter, confirmed by the collector, lost."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0

    @property
    def unconfirmed(self) -> int:
        return self.sent - self.delivered - self.failed

    def meta(self, url: str) -> dict[str, Any]:
        """The run node's `otlp` meta: where, how many, and how many were not delivered."""
        return {
            "endpoint": shown(url),
            "spans": self.sent,
            "dropped": self.failed,
            "unconfirmed": self.unconfirmed,
        }


class _Counting(SpanExporter):
    """The OTLP exporter, telling its owner which spans each export delivered or lost."""

    def __init__(self, inner: SpanExporter, owner: OtlpExport) -> None:
        self.inner, self.owner = inner, owner
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            self.owner.count(spans, delivered=False)
            raise  # the processor logs it
        self.owner.count(spans, delivered=result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        if not self._shut:  # once: `close` stops it before the processor does
            self._shut = True
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class OtlpExport:
    """One endpoint's exporter in this process: nodes in, spans out in batches, counted per run."""

    def __init__(self, target: OtlpTarget) -> None:
        self.url = traces_url(target.endpoint)
        self._tallies: dict[str, Tally] = {}
        self._answering = True
        """Whether the collector's last answer was a success: a run waits for confirmations
        only then, so a collector that is down costs runs nothing after its first failure."""
        self._changed = threading.Condition()
        exporter = OTLPSpanExporter(
            endpoint=self.url, headers=dict(target.headers) or None, timeout=REQUEST_TIMEOUT_S
        )
        self._exporter = _Counting(exporter, self)
        self._processor = BatchSpanProcessor(
            self._exporter, max_queue_size=QUEUE_SPANS, schedule_delay_millis=SCHEDULE_MS
        )
        self._resource = Resource.create({"service.name": SERVICE_NAME})
        self._scope = InstrumentationScope(SERVICE_NAME)

    def send(self, node: Node) -> None:
        """Queue an ended node's span; returns at once whatever the collector does."""
        data = span_of(node)
        trace = int(data.trace_id, 16)
        context = SpanContext(trace, int(data.span_id, 16), False, _SAMPLED)
        parent = None
        if data.parent_span_id:
            parent = SpanContext(trace, int(data.parent_span_id, 16), False, _SAMPLED)
        span = ReadableSpan(
            data.name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=data.attributes,
            kind=SpanKind(data.kind - 1),  # OTLP counts span kinds from 1, the SDK from 0
            status=Status(StatusCode.ERROR, data.error) if data.error else Status(StatusCode.UNSET),
            start_time=data.start_ns,
            end_time=data.end_ns,
            instrumentation_scope=self._scope,
        )
        with self._changed:
            self._tallies.setdefault(data.trace_id, Tally()).sent += 1
        self._processor.on_end(span)

    def count(self, spans: Sequence[ReadableSpan], *, delivered: bool) -> None:
        with self._changed:
            self._answering = delivered
            for span in spans:
                context = span.context
                if context is None:
                    continue
                tally = self._tallies.setdefault(f"{context.trace_id:032x}", Tally())
                if delivered:
                    tally.delivered += 1
                else:
                    tally.failed += 1
            self._changed.notify_all()

    def settle(self, run_id: str, timeout_s: float = SETTLE_S) -> Tally:
        """A run's tally once the collector confirmed all its spans, at `timeout_s`, or at
        once while the collector is failing."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            tally = self._tallies.setdefault(trace_id(run_id), Tally())
            while (
                tally.unconfirmed and self._answering and (left := deadline - time.monotonic()) > 0
            ):
                self._changed.wait(left)
            return Tally(tally.sent, tally.delivered, tally.failed)

    def totals(self) -> Tally:
        with self._changed:
            return Tally(
                sum(t.sent for t in self._tallies.values()),
                sum(t.delivered for t in self._tallies.values()),
                sum(t.failed for t in self._tallies.values()),
            )

    def close(self, timeout_s: float) -> Tally:
        """Send what is queued (for at most `timeout_s`), stop, and return the totals; a span
        not confirmed by then is lost."""
        # the SDK's own flush and shutdown wait up to 30 s for a collector that does not answer
        flush = threading.Thread(target=self._processor.force_flush, daemon=True)
        flush.start()
        flush.join(timeout_s)
        self._exporter.shutdown()  # ends a retry in progress; what is left then fails at once
        self._processor.shutdown()
        total = self.totals()
        return Tally(total.sent, total.delivered, total.sent - total.delivered)


_EXPORTS: dict[OtlpTarget, OtlpExport] = {}
_EXPORTS_LOCK = threading.Lock()


def export_to(target: OtlpTarget) -> OtlpExport:
    """This process's exporter for a target, made on first use."""
    with _EXPORTS_LOCK:
        if target not in _EXPORTS:
            _EXPORTS[target] = OtlpExport(target)
        return _EXPORTS[target]


@atexit.register
def close_all(timeout_s: float = 2.0) -> dict[str, Tally]:
    """Flush and stop every exporter of the process (the CLI before it prints its totals, and
    at exit): per traces URL, what was sent, delivered and lost."""
    with _EXPORTS_LOCK:
        exports = list(_EXPORTS.values())
        _EXPORTS.clear()
    return {export.url: export.close(timeout_s) for export in exports}


def closing_lines(timeout_s: float = 2.0) -> list[str]:
    """Close every exporter and say, per collector, what was sent and what was lost (for a
    command line's last words)."""
    return [
        f"OTLP: {t.sent} spans sent to {shown(url)}, {t.failed} lost"
        for url, t in close_all(timeout_s).items()
    ]


class OtlpSink:
    """One run tree's sink: each node sent once, when it first ends (later rewrites of an ended
    node, such as `used_by`, change nothing a span holds)."""

    def __init__(self, target: OtlpTarget, run_id: str) -> None:
        self.export = export_to(target)
        self.run_id = run_id
        self._sent: set[str] = set()

    def write(self, node: Node) -> None:
        if node.status == "running" or node.node_id in self._sent:
            return
        self._sent.add(node.node_id)
        self.export.send(node)

    def close(self) -> None:
        """Nothing to close: the exporter is the process's, shared with other runs."""

    def settle(self) -> dict[str, Any]:
        """The run node's `otlp` meta, once the collector confirmed the run's spans (or after
        SETTLE_S)."""
        return self.export.settle(self.run_id).meta(self.export.url)
