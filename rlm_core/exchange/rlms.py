"""Import of the JSONL trajectory logs of the official `rlms` package (its RLMLogger), plus the
report and line helpers every import shares.

Field names are those of alexzhang13/rlm: rlm/logger/rlm_logger.py @ cde7ee11, rlm/core/types.py
@ 4878c103 / 056fc96c (RLMIteration, CodeBlock, REPLResult, RLMChatCompletion), rlm/core/rlm.py @
04368b2d (RLMChatCompletion.metadata = a child's trajectory) and visualizer/src/lib/types.ts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rlm_core.context import flatten
from rlm_core.secrets import Scrubber
from rlm_core.store.blobs import write_blob
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, NodeKind, new_id

ENTRY_TYPES = ("metadata", "run_context", "iteration")


class ImportFormatError(ValueError):
    """The file is missing, empty or not in a format we can import."""


class RunExists(ValueError):
    """The run id is already in the store and the import was not asked to replace it."""


@dataclass
class ImportReport:
    run_id: str
    nodes: int = 0
    skipped: list[str] = field(default_factory=list)
    """What was not imported: 'line N: why' (line numbers count from 1)."""
    format: str = ""

    def skip(self, line: Line | int, why: str) -> None:
        number = line if isinstance(line, int) else line.number
        self.skipped.append(f"line {number}: {why}")

    def summary(self) -> str:
        text = f"imported run {self.run_id} ({self.format}): {self.nodes} nodes"
        return text + (f", {len(self.skipped)} skipped" if self.skipped else ", nothing skipped")


@dataclass(frozen=True)
class Line:
    number: int
    data: dict[str, Any]


def split_lines(text: str) -> tuple[list[Line], list[str]]:
    """The JSON-object lines of a JSONL text and a 'line N: why' note for each bad line."""
    raw = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        raw.pop()
    lines: list[Line] = []
    bad: list[str] = []
    for number, chunk in enumerate(raw, 1):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            data = json.loads(chunk)
        except json.JSONDecodeError as exc:
            # a writer killed mid-line leaves a last line without its newline
            torn = number == len(raw) and not complete
            why = "truncated: the file ends inside this line" if torn else f"not JSON ({exc.msg})"
            bad.append(f"line {number}: {why}")
            continue
        if isinstance(data, dict):
            lines.append(Line(number, data))
        else:
            bad.append(f"line {number}: not a JSON object")
    return lines, bad


def is_rlms_entry(data: dict[str, Any]) -> bool:
    return data.get("type") in ENTRY_TYPES or ("code_blocks" in data and "response" in data)


# ---- field readers ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Prompts and responses are strings or message structures; structures become JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0


def _when(value: Any) -> float | None:
    """RLMLogger timestamps are naive local-time ISO strings (datetime.now().isoformat())."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _usage(call: dict[str, Any]) -> tuple[int | None, int | None]:
    """Tokens of a sub-call: summed model_usage_summaries, or the older flat fields."""
    usage = call.get("usage_summary")
    per_model = usage.get("model_usage_summaries") if isinstance(usage, dict) else None
    if isinstance(per_model, dict) and per_model:
        rows = [u for u in per_model.values() if isinstance(u, dict)]
        tin = [
            u["total_input_tokens"] for u in rows if isinstance(u.get("total_input_tokens"), int)
        ]
        tout = [
            u["total_output_tokens"] for u in rows if isinstance(u.get("total_output_tokens"), int)
        ]
        return (sum(tin) if tin else None), (sum(tout) if tout else None)
    flat_in, flat_out = call.get("prompt_tokens"), call.get("completion_tokens")
    return (
        flat_in if isinstance(flat_in, int) else None,
        flat_out if isinstance(flat_out, int) else None,
    )


def _call_model(call: dict[str, Any]) -> str | None:
    if isinstance(call.get("root_model"), str) and call["root_model"]:
        return str(call["root_model"])
    usage = call.get("usage_summary")
    per_model = usage.get("model_usage_summaries") if isinstance(usage, dict) else None
    if isinstance(per_model, dict) and len(per_model) == 1:
        return str(next(iter(per_model)))
    return None


def _describe(value: Any) -> str:
    """Our variables are short descriptions (type and size), not values."""
    if isinstance(value, str):
        return f"str, {len(value):,} chars"
    if isinstance(value, list):
        return f"list, {len(value):,} items"
    if isinstance(value, dict):
        return f"dict, {len(value):,} keys"
    return "None" if value is None else type(value).__name__


def _final_value(value: Any) -> str | None:
    # older logs store the answer as a [kind, value] pair (visualizer: extractFinalAnswer)
    if isinstance(value, list) and len(value) == 2:
        value = value[1]
    return None if value is None else _text(value)


# ---- building the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class _At:
    """Where in the file a piece comes from, for the skip report."""

    line: int
    where: str
    iteration: Any


class _Builder:
    """Turns iteration entries into nodes of one run tree, in execution order."""

    def __init__(self, run_id: str, report: ImportReport, store: TraceStore) -> None:
        self.run_id = run_id
        self.report = report
        self.store = store
        self.nodes: list[Node] = []
        self.llm_calls = 0
        self.sub_models: list[str] = []

    def add(self, parent: Node, kind: NodeKind, depth: int, seq: int, **fields: Any) -> Node:
        # ids are made in creation order, which is execution order: the views sort by id
        node = Node(new_id(), self.run_id, parent.node_id, kind, depth, seq, status="ok", **fields)
        self.nodes.append(node)
        return node

    def fill_run(self, run: Node, entries: list[tuple[int, Any]], where: str) -> None:
        """Nodes for `entries` (line number, iteration) under `run`; sets its answer and status."""
        seq = itertools.count(1)
        clock: float | None = None
        answer: str | None = None
        done = 0
        for number, entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("response"), str):
                self.report.skip(number, f"{where}an iteration without a response text")
                continue
            label = f"{where}iteration {entry.get('iteration', '?')}"
            at = _At(number, f"{label}: ", entry.get("iteration"))
            clock = self.iteration(run, entry, seq, at, clock)
            done += 1
            final = _final_value(entry.get("final_answer"))
            if final is not None:
                answer = final
                node = self.add(run, "final", run.depth, next(seq), output=final)
                node.started_at = node.ended_at = clock
                node.meta = {"var": None, "iteration": entry.get("iteration")}
        run.ended_at = clock if clock is not None else run.started_at
        run.output = answer
        run.meta["iterations"] = done
        if answer is None:
            run.status = "interrupted"
            run.error = "the log ends without a final answer"

    def iteration(
        self, run: Node, entry: dict[str, Any], seq: Iterator[int], at: _At, clock: float | None
    ) -> float:
        blocks = entry.get("code_blocks")
        if not isinstance(blocks, list):
            if blocks is not None:
                self.report.skip(at.line, f"{at.where}code_blocks is not a list")
            blocks = []
        results = [b.get("result") if isinstance(b, dict) else None for b in blocks]
        code_s = sum(_seconds(r.get("execution_time")) for r in results if isinstance(r, dict))
        total = _seconds(entry.get("iteration_time")) or code_s
        end = _when(entry.get("timestamp"))
        if end is None:
            end = (clock if clock is not None else run.started_at) + total
        start = end - total
        lm = self.add(run, "lm", run.depth, next(seq), model=run.model, output=entry["response"])
        lm.input = _text(entry.get("prompt"))
        lm.started_at, lm.ended_at = start, start + max(total - code_s, 0.0)
        lm.latency_s = lm.ended_at - lm.started_at
        # rlms logs the whole prompt of every call; ours hold deltas (see views.lm_messages)
        lm.meta = {"iteration": at.iteration, "prompt_is_full": True}
        now = lm.ended_at
        for index, block in enumerate(blocks, 1):
            where = _At(at.line, f"{at.where}code block {index}: ", at.iteration)
            if not isinstance(block, dict) or not isinstance(block.get("code"), str):
                self.report.skip(at.line, f"{where.where}no code")
                continue
            now = self.code(run, block, seq, where, now, index)
        run.started_at = min(run.started_at, start)
        return max(end, now)

    def code(
        self, run: Node, block: dict[str, Any], seq: Iterator[int], at: _At, now: float, index: int
    ) -> float:
        result = block.get("result")
        if not isinstance(result, dict):
            result = {}
        stdout, stderr = _text(result.get("stdout")) or "", _text(result.get("stderr")) or ""
        node = self.add(run, "code", run.depth, next(seq), code=block["code"])
        node.stdout, node.stderr, node.model_view = stdout, stderr, stdout
        node.started_at = now
        node.ended_at = now + _seconds(result.get("execution_time"))
        values = result.get("locals")
        values = values if isinstance(values, dict) else {}
        variables = {str(k): _describe(v) for k, v in values.items()}
        node.meta = {"iteration": at.iteration, "block": index, "variables": variables}
        if stderr.strip():  # rlms itself counts any stderr as an error of the iteration
            node.status, node.error = "error", stderr
        calls = result.get("rlm_calls")
        call_at = now
        for j, call in enumerate(calls if isinstance(calls, list) else [], 1):
            where = _At(at.line, f"{at.where}sub-call {j}: ", at.iteration)
            if not isinstance(call, dict) or "response" not in call:
                self.report.skip(at.line, f"{where.where}no response")
                continue
            call_at = self.sub_call(run, node, call, seq, where, call_at)
        return max(node.ended_at, call_at)

    def sub_call(
        self, run: Node, code: Node, call: dict[str, Any], seq: Iterator[int], at: _At, now: float
    ) -> float:
        trajectory = call.get("metadata")
        child_iterations = trajectory.get("iterations") if isinstance(trajectory, dict) else None
        kind: NodeKind = "rlm_query" if isinstance(child_iterations, list) else "llm_query"
        node = self.add(code, kind, run.depth + 1, next(seq), input=_text(call.get("prompt")))
        node.output = _text(call.get("response"))
        node.model = _call_model(call)
        node.started_at = now
        node.ended_at = now + _seconds(call.get("execution_time"))
        node.latency_s = node.ended_at - now
        node.tokens_in, node.tokens_out = _usage(call)
        if isinstance(call.get("error"), str):
            node.status, node.error = "error", call["error"]
            node.meta = {k: call[k] for k in ("error_type", "status_code") if k in call}
        self.llm_calls += 1
        if node.model and node.model not in self.sub_models:
            self.sub_models.append(node.model)
        if isinstance(trajectory, dict) and isinstance(child_iterations, list):
            self.child_run(node, trajectory, child_iterations, call, at)
        return node.ended_at

    def child_run(
        self,
        parent: Node,
        trajectory: dict[str, Any],
        entries: list[Any],
        call: dict[str, Any],
        at: _At,
    ) -> None:
        run_meta = trajectory.get("run_metadata")
        model = run_meta.get("root_model") if isinstance(run_meta, dict) else None
        model = model if isinstance(model, str) else None
        child = self.add(parent, "run", parent.depth, 0, model=model)
        child.started_at = parent.started_at
        child.meta = _context_meta(self.store, call.get("prompt"))
        if isinstance(run_meta, dict):
            child.meta["config"] = run_meta
        parent.meta["child_run"] = child.node_id
        self.fill_run(child, [(at.line, e) for e in entries], at.where)


def _context_meta(store: TraceStore, context: Any) -> dict[str, Any]:
    """Stores the context a run was given as a blob, the way the engine does."""
    if context is None:
        return {}
    if isinstance(context, str):
        data, kind = context.encode("utf-8", "surrogatepass"), "text"
    else:
        data, kind = json.dumps(context, ensure_ascii=False).encode(), "json"
    sha = write_blob(store.blob_dir, data)
    return {"context_sha": sha, "context_kind": kind, "context_chars": len(flatten(context)[0])}


def _header_entries(
    lines: list[Line], report: ImportReport
) -> tuple[dict[str, Any], dict[str, Any], list[Line]]:
    """(metadata entry, run_context entry, iteration lines); one run per file."""
    metadata: dict[str, Any] = {}
    context: dict[str, Any] = {}
    iterations: list[Line] = []
    for line in lines:
        kind = line.data.get("type")
        if kind == "metadata" and not metadata:
            metadata = line.data
        elif kind == "run_context" and not context and not iterations:
            context = line.data
        elif kind in ("metadata", "run_context"):
            report.skip(line, f"a second {kind} entry (another completion); one run per import")
        elif kind in (None, "iteration"):
            iterations.append(line)
        else:
            report.skip(line, f"unknown entry type {kind!r}")
    return metadata, context, iterations


def import_rlms_lines(
    store: TraceStore, lines: list[Line], *, source_name: str | None = None
) -> ImportReport:
    """A new run from the parsed lines of an RLMLogger log (see the module docstring)."""
    run_id = new_id()
    report = ImportReport(run_id=run_id, format="rlms-logger")
    metadata, context, iterations = _header_entries(lines, report)
    if not iterations and not metadata:
        raise ImportFormatError("no rlms metadata or iteration entry in the file")
    model = metadata.get("root_model") if isinstance(metadata.get("root_model"), str) else None
    question = context.get("root_prompt") if isinstance(context.get("root_prompt"), str) else None
    started = _when(metadata.get("timestamp")) or _when(context.get("timestamp"))
    run = Node(run_id, run_id, None, "run", 0, 0, status="ok", model=model, input=question)
    run.started_at = started if started is not None else run.started_at
    config = {k: v for k, v in metadata.items() if k not in ("type", "timestamp")}
    run.meta = {"question": question, "root_model": model, "config": config}
    run.meta.update(_context_meta(store, context.get("prompt")))
    builder = _Builder(run_id, report, store)
    builder.nodes.append(run)
    builder.fill_run(run, [(line.number, line.data) for line in iterations], "")
    run.meta.update(
        sub_model=builder.sub_models[0] if builder.sub_models else None,
        llm_calls=builder.llm_calls,
        imported_from="rlms-logger",
        source_file=source_name,
    )
    store.add_run(run_id, [Scrubber.for_run().node(n) for n in builder.nodes])
    report.nodes = len(builder.nodes)
    return report
