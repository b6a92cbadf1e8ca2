"""One offline HTML file of a run: the graph (pyvis's vis-network, inlined) plus an inspector
that shows a clicked node's details. Every text in it is escaped: node texts are untrusted."""

from __future__ import annotations

import json
from typing import Any

from rlm_core.analysis.graph import standalone_html
from rlm_core.exchange.jsonl import full_nodes, portable
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import RunSummary

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
    nodes = full_nodes(store, run_id)
    run = store.get_run(run_id) or RunSummary(run_id=run_id)
    question = " ".join(str(run.question or "").split())[:120]
    page = standalone_html(nodes, f"RLM run {run_id}" + (f": {question}" if question else ""))
    details = {n.node_id: portable(n) for n in nodes}
    inspector = _INSPECTOR.replace("__DATA__", _script_json(details))
    head, sep, tail = page.rpartition("</body>")
    if not sep:
        return page + inspector
    return head + inspector + sep + tail
