"""Our lossless JSONL export of a run, and imports of it, of our journals and of the official
`rlms` package's RLMLogger logs (rlms.py). The format of a file is told from its first line.
The HTML and OpenTelemetry exports are html.py and otel.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_core.exchange.rlms import (
    ImportFormatError,
    ImportReport,
    Line,
    RunExists,
    import_rlms_lines,
    is_rlms_entry,
    split_lines,
)
from rlm_core.secrets import Scrubber
from rlm_core.store.blobs import write_blob
from rlm_core.store.journal import JOURNAL_FORMAT
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunSummary, node_problem, valid_id

FORMAT = "rlm-tracer/1"


# ---- reading a run back ----------------------------------------------------------------------


def full_nodes(store: TraceStore, run_id: str) -> list[Node]:
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


def portable(node: Node) -> dict[str, Any]:
    data = node.to_dict()
    # blob shas name files of this store only; the importing store makes its own from the texts
    data["meta"].pop("blobs", None)
    return data


# ---- JSONL -----------------------------------------------------------------------------------


def export_jsonl(store: TraceStore, run_id: str) -> str:
    """Header line, every node with full texts, then the context blob of each run node."""
    nodes = full_nodes(store, run_id)
    run = store.get_run(run_id) or RunSummary(run_id=run_id)
    header: dict[str, Any] = {"format": FORMAT, "run_id": run_id, "exported_at": time.time()}
    if run.name:
        header["name"] = run.name
    if run.tags:
        header["tags"] = list(run.tags)
    # ASCII escapes keep lone surrogates (allowed in our texts) writable to any file
    lines = [json.dumps(header)]
    lines += [json.dumps(portable(n)) for n in nodes]
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
    problem = node_problem(data)
    if problem is not None:
        raise ValueError(problem)
    if data["run_id"] != run_id:
        raise ValueError(f"belongs to run {data['run_id']}, not {run_id}")
    try:
        node = Node.from_dict(data)
    except TypeError as exc:
        raise ValueError(f"missing fields ({exc})") from None
    # blob names come from the exporting store; this one makes its own from the texts
    node.meta.pop("blobs", None)
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
    scrub = Scrubber.for_run()  # the environment's keys, should the file hold one
    store.add_run(run_id, [scrub.node(n) for n in sorted(nodes.values(), key=lambda n: n.node_id)])
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
    if "run_id" in first and not valid_id(first["run_id"]):
        # the id names the run's journal file: `../../x` must not reach Delete or Replace
        raise ImportFormatError(f"the file's run id {str(first['run_id'])[:80]!r} is not valid")
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
