"""Import and export of runs: our lossless JSONL, a self-contained HTML page, OpenTelemetry JSON,
and imports of our JSONL, our journals and the official `rlms` package's RLMLogger logs.

The format of a file to import is told from its first line.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_core.analysis.graph import standalone_html
from rlm_core.exchange.rlms import (
    ImportFormatError,
    ImportReport,
    Line,
    RunExists,
    import_rlms_lines,
    is_rlms_entry,
    split_lines,
)
from rlm_core.store.blobs import write_blob
from rlm_core.store.journal import JOURNAL_FORMAT
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node

__all__ = [
    "FORMAT",
    "ImportFormatError",
    "ImportReport",
    "RunExists",
    "export_html",
    "export_jsonl",
    "export_otel",
    "import_file",
]

FORMAT = "rlm-tracer/1"
_KINDS = ("run", "lm", "code", "llm_query", "rlm_query", "final")
_STATUSES = ("running", "ok", "error", "limit", "interrupted")


# ---- reading a run back ----------------------------------------------------------------------


def _full_nodes(store: TraceStore, run_id: str) -> list[Node]:
    """Every node of the run with its big texts read back from blobs."""
    nodes = store.nodes(run_id)
    if not nodes:
        raise ValueError(f"no run with id {run_id}")
    full = []
    for n in nodes:
        # only nodes with blobbed texts need the second read
        whole = store.node(n.node_id) if n.meta.get("blobs") else n
        full.append(whole or n)
    return full


def _portable(node: Node) -> dict[str, Any]:
    data = node.to_dict()
    # blob shas name files of this store only; the importing store makes its own from the texts
    data["meta"].pop("blobs", None)
    return data


# ---- JSONL -----------------------------------------------------------------------------------


def export_jsonl(store: TraceStore, run_id: str) -> str:
    """Header line, every node with full texts, then the context blob of each run node."""
    nodes = _full_nodes(store, run_id)
    run = store.get_run(run_id) or {}
    header: dict[str, Any] = {"format": FORMAT, "run_id": run_id, "exported_at": time.time()}
    if run.get("name"):
        header["name"] = run["name"]
    if run.get("tags"):
        header["tags"] = list(run["tags"])
    # ASCII escapes keep lone surrogates (allowed in our texts) writable to any file
    lines = [json.dumps(header)]
    lines += [json.dumps(_portable(n)) for n in nodes]
    seen: set[str] = set()
    for n in nodes:
        sha = n.meta.get("context_sha")
        if n.kind != "run" or not sha or sha in seen or not store.blob_path(sha).exists():
            continue
        seen.add(sha)
        blob = {"blob": sha, "kind": n.meta.get("context_kind"), "text": store.read_blob(sha)}
        lines.append(json.dumps(blob))
    return "\n".join(lines) + "\n"


def _node_from(data: dict[str, Any], run_id: str) -> Node:
    """A node from an exported line, or ValueError saying what is wrong with it."""
    for name in ("node_id", "run_id", "kind"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"no {name}")
    if data["run_id"] != run_id:
        raise ValueError(f"belongs to run {data['run_id']}, not {run_id}")
    if data["kind"] not in _KINDS or data.get("status", "running") not in _STATUSES:
        raise ValueError(f"unknown kind or status ({data['kind']}, {data.get('status')})")
    try:
        node = Node.from_dict(data)
    except TypeError as exc:
        raise ValueError(f"missing fields ({exc})") from None
    if not isinstance(node.meta, dict) or not isinstance(node.context_spans, list):
        raise ValueError("meta or context_spans has the wrong type")
    return node


def _claim_run(store: TraceStore, run_id: str, replace: bool) -> None:
    if store.get_run(run_id) is None and store.node(run_id) is None:
        return
    if not replace:
        raise RunExists(
            f"run {run_id} already exists in {store.dir}; "
            "import with replace=True (CLI: --replace) to overwrite it"
        )
    store.delete_run(run_id)


def _import_nodes(
    store: TraceStore,
    lines: list[Line],
    run_id: str,
    replace: bool,
    source: str,
    parse: Callable[[Line, dict[str, Node], ImportReport], None],
) -> ImportReport:
    """Shared by our JSONL and journal imports: parse every line, then write the nodes."""
    report = ImportReport(run_id=run_id, format=source)
    nodes: dict[str, Node] = {}
    for line in lines:
        parse(line, nodes, report)
    if not nodes:
        raise ImportFormatError(f"no valid node of run {run_id} in the file")
    _claim_run(store, run_id, replace)
    root = nodes.get(run_id)
    if root is None or root.kind != "run" or root.parent_id is not None:
        # without a root run node the run would not be listed; keep what came with a stand-in
        root = Node(run_id, run_id, None, "run", 0, 0, status="interrupted")
        root.started_at = min(n.started_at for n in nodes.values())
        root.error = "the root run node was missing from the imported file"
        nodes[run_id] = root
        report.skipped.append(f"no root run node: a stand-in root was made for run {run_id}")
    root.meta.setdefault("imported_from", source)
    for node in sorted(nodes.values(), key=lambda n: n.node_id):
        store.write(node)
    store.flush()
    report.nodes = len(nodes)
    return report


def _parse_export_line(run_id: str, store: TraceStore) -> Callable[..., None]:
    def parse(line: Line, nodes: dict[str, Node], report: ImportReport) -> None:
        data = line.data
        if "blob" in data:
            text = data.get("text")
            if not isinstance(text, str) or not isinstance(data["blob"], str):
                report.skip(line, "blob line without text")
                return
            sha = write_blob(store.blob_dir, text.encode("utf-8", "surrogatepass"))
            if sha != data["blob"]:
                report.skip(line, "blob text does not match its sha256 (stored under its own)")
            return
        try:
            node = _node_from(data, run_id)
        except ValueError as exc:
            report.skip(line, f"not a node of this run: {exc}")
            return
        if node.node_id in nodes:
            report.skip(line, f"node {node.node_id} appears twice; the first was kept")
            return
        nodes[node.node_id] = node

    return parse


def _parse_journal_line(run_id: str) -> Callable[..., None]:
    def parse(line: Line, nodes: dict[str, Node], report: ImportReport) -> None:
        try:
            node = _node_from(line.data, run_id)
        except ValueError as exc:
            report.skip(line, f"not a node event of this run: {exc}")
            return
        nodes[node.node_id] = node  # a journal holds start and end events: the last one wins

    return parse


# ---- importing -------------------------------------------------------------------------------


def _read(path_or_text: str | Path) -> tuple[str, str | None]:
    """(text, file name or None); a str is a path unless it looks like file content."""
    if isinstance(path_or_text, str) and ("\n" in path_or_text or path_or_text.startswith("{")):
        return path_or_text, None
    path = Path(path_or_text)
    try:
        return path.read_bytes().decode("utf-8", "replace"), path.name
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror or exc}") from None


def import_file(
    store: TraceStore, path_or_text: str | Path, *, replace: bool = False
) -> ImportReport:
    """Import a run from our JSONL export, one of our journals or an `rlms` RLMLogger log.

    Raises ImportFormatError (a ValueError) for a missing, empty or unrecognised file and
    RunExists when the run is already stored and `replace` is false.
    """
    text, name = _read(path_or_text)
    lines, bad = split_lines(text)
    if not lines:
        raise ImportFormatError("no valid JSON line in the file" + (f" ({bad[0]})" if bad else ""))
    first = lines[0].data  # the first valid line tells the format; bad ones are reported
    if str(first.get("format", "")).startswith("rlm-tracer/"):
        if first["format"] != FORMAT or not isinstance(first.get("run_id"), str):
            raise ImportFormatError(f"unsupported export format {first['format']!r}")
        run_id = first["run_id"]
        parse = _parse_export_line(run_id, store)
        report = _import_nodes(store, lines[1:], run_id, replace, "rlm-tracer-jsonl", parse)
        _restore_labels(store, run_id, first)
    elif first.get("journal") == JOURNAL_FORMAT and isinstance(first.get("run_id"), str):
        run_id = first["run_id"]
        parse = _parse_journal_line(run_id)
        report = _import_nodes(store, lines[1:], run_id, replace, "rlm-tracer-journal", parse)
    elif is_rlms_entry(first):
        report = import_rlms_lines(store, lines, source_name=name)
    else:
        raise ImportFormatError(
            "unrecognised file: the first line is not an rlm-tracer export, an rlm-tracer journal "
            "or an rlms RLMLogger entry"
        )
    report.skipped = sorted(bad + report.skipped, key=_line_number)
    return report


def _line_number(note: str) -> int:
    head = note.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 1 << 62


def _restore_labels(store: TraceStore, run_id: str, header: dict[str, Any]) -> None:
    if isinstance(header.get("name"), str):
        store.rename_run(run_id, header["name"])
    tags = header.get("tags")
    if isinstance(tags, list):
        store.set_tags(run_id, [str(t) for t in tags])


# ---- HTML ------------------------------------------------------------------------------------

_INSPECTOR = """<style>
body { margin-right: 440px; }
#rlm-inspector { position: fixed; top: 0; right: 0; width: 420px; height: 100vh; overflow: auto;
  box-sizing: border-box; padding: 10px 12px; border-left: 1px solid #ccc; background: #fafafa;
  font: 13px/1.4 system-ui, sans-serif; }
#rlm-inspector h4 { margin: 10px 0 4px; }
#rlm-inspector pre { white-space: pre-wrap; word-break: break-word; background: #fff;
  border: 1px solid #ddd; padding: 6px; margin: 0; max-height: 40vh; overflow: auto; }
#rlm-inspector table td { vertical-align: top; padding: 1px 6px 1px 0; }
</style>
<aside id="rlm-inspector"><h3>Node</h3><div id="rlm-inspector-body">Click a node of the graph
to see everything it holds.</div></aside>
<script type="application/json" id="rlm-node-data">__DATA__</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("rlm-node-data").textContent);
  var body = document.getElementById("rlm-inspector-body");
  var FIELDS = ["kind", "status", "model", "node_id", "parent_id", "depth", "seq", "started_at",
    "ended_at", "latency_s", "tokens_in", "tokens_out", "cost_usd", "context_spans"];
  var TEXTS = ["error", "input", "output", "code", "stdout", "stderr", "model_view"];
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;  // text only: nothing from a node is markup
    return e;
  }
  function value(name, v) {
    if ((name === "started_at" || name === "ended_at") && typeof v === "number") {
      return new Date(v * 1000).toISOString();
    }
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  function show(id) {
    var n = data[id];
    if (!n) return;
    while (body.firstChild) body.removeChild(body.firstChild);
    var table = el("table");
    FIELDS.forEach(function (f) {
      if (n[f] === null || n[f] === undefined) return;
      var tr = el("tr");
      tr.appendChild(el("td", f));
      tr.appendChild(el("td", value(f, n[f])));
      table.appendChild(tr);
    });
    body.appendChild(table);
    TEXTS.forEach(function (f) {
      if (n[f] === null || n[f] === undefined || n[f] === "") return;
      body.appendChild(el("h4", f + " (" + n[f].length + " chars)"));
      body.appendChild(el("pre", n[f]));
    });
    body.appendChild(el("h4", "meta"));
    body.appendChild(el("pre", JSON.stringify(n.meta, null, 2)));
  }
  window.rlmShowNode = show;
  if (typeof network !== "undefined") {
    network.on("click", function (params) {
      if (params.nodes.length) show(params.nodes[0]);
    });
  }
})();
</script>
"""


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element: every <, > and & becomes a \\u escape."""
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def export_html(store: TraceStore, run_id: str) -> str:
    """One offline HTML file: the graph plus an inspector that shows a clicked node's details."""
    nodes = _full_nodes(store, run_id)
    run = store.get_run(run_id) or {}
    question = " ".join(str(run.get("question") or "").split())[:120]
    page = standalone_html(nodes, f"RLM run {run_id}" + (f": {question}" if question else ""))
    details = {n.node_id: _portable(n) for n in nodes}
    inspector = _INSPECTOR.replace("__DATA__", _script_json(details))
    head, sep, tail = page.rpartition("</body>")
    if not sep:
        return page + inspector
    return head + inspector + sep + tail


# ---- OpenTelemetry ---------------------------------------------------------------------------

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
