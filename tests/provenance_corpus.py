"""Ground truth for provenance: the documents people bring to an RLM (repetitive server logs, CSV
exports, JSON records, boilerplate paragraphs, files sharing a license header) and the code shapes
models write over them. Every shape is a cell that builds `prompts` and, beside them, `truth`:
the exact [start, end) ranges of the flattened context each prompt was cut from (computed with
positions and lengths only, so working it out reads nothing). The same cell runs in the REPL
worker and, untracked, here; `score` holds a run's recorded spans against the truth.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_core import RLM, TraceStore
from rlm_core.models.model import Model, Role
from rlm_core.models.scripted import ScriptedModel
from rlm_core.types import Node

# ---- documents -------------------------------------------------------------------------------

_ROUTINE = (
    "[api] GET /health 200 1ms",
    "[api] GET /api/v1/items 200 12ms",
    "[api] POST /api/v1/orders 201 48ms",
    "[db] pool 8/32 connections in use",
    "[cache] hit ratio 0.93 over 60s",
    "[auth] token refreshed for service account",
    "[worker] job sync-inventory finished in 2s",
)
_FAULTS = (
    "[db] connection reset by peer",
    "[api] upstream timeout after 30000ms",
    "[auth] token expired for service account",
)


def server_log(chars: int, seed: int = 3) -> str:
    """A busy service's log: a handful of messages, several lines per second, so whole lines
    repeat verbatim (same second, same message) and 64-character windows repeat everywhere."""
    rng = random.Random(seed)
    lines, total, second = [], 0, 0
    while total < chars:
        for _ in range(rng.randint(2, 6)):
            fault = rng.random() < 0.02
            level, message = (
                ("ERROR", rng.choice(_FAULTS)) if fault else ("INFO", rng.choice(_ROUTINE))
            )
            stamp = (
                f"2025-03-01 {second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            )
            line = f"{stamp} {level:5} {message}"
            lines.append(line)
            total += len(line) + 1
        second += 1
    return "\n".join(lines)[:chars]


def huge_log(chars: int) -> str:
    """A long log made fast: one block of `server_log`, copied with a different day each time
    (so no 20,000-character chunk occurs twice)."""
    block = server_log(1_000_000)
    days = (chars + len(block)) // (len(block) + 1) + 1
    copies = [
        block.replace("2025-03-01", f"2025-{m:02d}-{d:02d}")
        for m in range(1, 13)
        for d in range(1, 29)
    ]
    return "\n".join(copies[:days])[:chars]


def csv_export(chars: int, seed: int = 5) -> str:
    """Sales rows from a few stores and products: many rows are identical."""
    rng = random.Random(seed)
    rows, total = ["date,store,sku,qty,unit_price"], 0
    while total < chars:
        row = (
            f"2025-03-{rng.randint(1, 3):02d},{rng.choice(('Oslo', 'Lima', 'Porto'))},"
            f"SKU-{rng.randint(1, 6):04d},{rng.randint(1, 3)},{rng.choice(('9.90', '19.90'))}"
        )
        rows.append(row)
        total += len(row) + 1
    return "\n".join(rows)


def json_records(n: int, seed: int = 7) -> list[str]:
    """JSON records as a list context; every eighth record is exported twice, verbatim."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        record = (
            f'{{"id": {i // 8 * 8 if i % 8 == 7 else i}, "type": "order", '
            f'"status": "{rng.choice(("shipped", "pending", "returned"))}", '
            f'"items": {rng.randint(1, 4)}, '
            f'"note": "{_FAULTS[i % 3] if i % 5 == 0 else "routine"}"}}'
        )
        out.append(out[i - 7] if i % 8 == 7 else record)
    return out


LICENSE = (
    "# Copyright (c) 2025 Example Corp.\n"
    "#\n"
    "# Permission is hereby granted, free of charge, to any person obtaining a copy of this\n"
    "# software and associated documentation files, to deal in the Software without\n"
    "# restriction, including without limitation the rights to use, copy, modify, merge,\n"
    "# publish, distribute, sublicense, and/or sell copies of the Software. THE SOFTWARE IS\n"
    '# PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.\n'
)


def licensed_files(n: int, seed: int = 9) -> dict[str, str]:
    """A dict context of source files that all start with the same license header."""
    rng = random.Random(seed)
    files = {}
    for i in range(n):
        body = "\n".join(
            f"def handler_{i}_{k}(event):\n    return event.get({rng.choice(_ROUTINE)!r})\n"
            for k in range(rng.randint(3, 8))
        )
        files[f"src/module_{i:03d}.py"] = LICENSE + "\n" + body
    return files


BOILERPLATE = (
    "This notice is part of the official record of the town council. Copies may be requested "
    "from the clerk's office during opening hours; corrections must be made in writing."
)


def town_records(chars: int, seed: int = 11) -> str:
    """Council minutes: paragraphs separated by a blank line, the same notice every fifth one."""
    rng = random.Random(seed)
    subjects = ("the bridge", "the harbour", "the school roof", "the spring fair", "the library")
    verbs = ("approved", "postponed", "discussed", "rejected", "funded")
    paras, total, i = [], 0, 0
    while total < chars:
        if i % 5 == 4:
            para = BOILERPLATE
        else:
            para = (
                f"Item {i}: the council {rng.choice(verbs)} {rng.choice(subjects)} "
                f"after {rng.randint(2, 90)} minutes; {rng.randint(3, 9)} members voted in favour."
            )
        paras.append(para)
        total += len(para) + 2
        i += 1
    return "\n\n".join(paras)


# ---- code shapes -----------------------------------------------------------------------------

FIXED_CHUNKS = """
size = {size}
prompts, truth = [], []
for i in range(0, len(context), size):
    chunk = context[i:i + size]
    prompts.append(f"Find every ERROR in this part of the log.\\n\\n{{chunk}}\\n\\nList them.")
    truth.append([[i, i + len(chunk)]])
"""

REGEX_WINDOWS = """
import re
prompts, truth = [], []
for m in re.finditer(r"ERROR", context):
    a, b = max(0, m.start() - {radius}), min(len(context), m.end() + {radius})
    prompts.append(f"What went wrong here?\\n---\\n{{context[a:b]}}\\n---")
    truth.append([[a, b]])
    if len(prompts) == {limit}:
        break
"""

LINE_FILTER = """
picked, places, pos = [], [], 0
for line in context.split("\\n"):
    if "{word}" in line:
        picked.append(line)
        places.append([pos, pos + len(line)])
    pos += len(line) + 1
prompts = ["Lines:\\n" + "\\n".join(picked[k:k + {group}]) + "\\nWhat do they have in common?"
           for k in range(0, len(picked), {group})]
truth = [places[k:k + {group}] for k in range(0, len(picked), {group})]
"""

ROW_BLOCKS = """
rows = context.splitlines()
header, prompts, truth, pos = rows[0], [], [], len(rows[0]) + 1
for k in range(1, len(rows), {block}):
    block = rows[k:k + {block}]
    prompts.append(f"Columns: {{header}}\\nRows:\\n" + "\\n".join(block) + "\\nTotal quantity?")
    end = pos + sum(len(r) + 1 for r in block) - 1
    truth.append([[0, len(header)], [pos, end]])
    pos = end + 1
"""

RECORDS = """
prompts, truth, pos = [], [], 0
for i, record in enumerate(context):
    if i < {limit}:
        prompts.append(f"Record {{i}}:\\n{{record}}\\nIs this order late?")
        truth.append([[pos, pos + len(record)]])
    pos += len(record) + 2
"""

HEADERS = """
prompts, truth, pos = [], [], 0
for name, text in context.items():
    prompts.append(f"Which license does {{name}} use?\\n\\n{{text[:{chars}]}}")
    truth.append([[pos, pos + min({chars}, len(text))]])
    pos += len(text) + 2
"""

PARAGRAPHS = """
prompts, truth, pos = [], [], 0
for para in context.split("\\n\\n"):
    if len(prompts) < {limit}:
        prompts.append(f"Summarise this paragraph of the minutes in one line:\\n{{para}}")
        truth.append([[pos, pos + len(para)]])
    pos += len(para) + 2
"""

SAMPLED_CHUNKS = """
size, step = {size}, {step}
prompts, truth = [], []
for i in range(0, len(context) - size, step):
    prompts.append(f"Any ERROR here?\\n{{context[i:i + size]}}")
    truth.append([[i, i + size]])
"""

MATCHED_LINES = """
import re
prompts, truth, hits, places = [], [], [], []
for m in re.finditer(r"^.*ERROR.*$", context, re.MULTILINE):
    hits.append(m.group(0))
    places.append([m.start(), m.end()])
for k in range(0, min(len(hits), {limit}), {group}):
    prompts.append("Group these errors by cause:\\n" + "\\n".join(hits[k:k + {group}]))
    truth.append(places[k:k + {group}])
"""
"""`m.group(0)` copies text in C: nothing tracks it, so these prompts are placed by matching."""


@dataclass(frozen=True)
class Shape:
    name: str
    code: str

    def truth(self, context: Any) -> tuple[list[str], list[list[list[int]]]]:
        """The prompts and true ranges, from running the cell here on the plain context."""
        scope: dict[str, Any] = {"context": context}
        exec(self.code, scope)
        return scope["prompts"], scope["truth"]


def shape(name: str, template: str, **values: Any) -> Shape:
    return Shape(name, template.format(**values).strip())


# ---- running shapes and scoring them ----------------------------------------------------------


@dataclass
class Score:
    calls: int = 0
    outside: int = 0
    """Sub-calls with at least one asserted range outside what their prompt was cut from."""
    phantom_chars: int = 0
    asserted_chars: int = 0
    pieces: int = 0
    covered: list[float] = field(default_factory=list)
    """Per piece: the share of it that was asserted (ambiguous places do not count)."""
    flagged: int = 0
    """Pieces not asserted whose true place is among a flagged ambiguous text's places."""
    examples: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return 1 - self.phantom_chars / self.asserted_chars if self.asserted_chars else 1.0

    def pieces_below(self, share: float) -> int:
        return sum(1 for c in self.covered if c < share)

    def __str__(self) -> str:
        return (
            f"{self.outside}/{self.calls} sub-calls with ranges outside their slice, "
            f"{self.phantom_chars:,} phantom chars, precision {self.precision:.4f}; "
            f"{self.pieces_below(0.99)}/{self.pieces} pieces under 99% coverage "
            f"({self.flagged} of them flagged ambiguous)"
        )


def _overlap(spans: Sequence[Sequence[int]], start: int, end: int) -> int:
    return sum(max(0, min(e, end) - max(s, start)) for s, e in spans)


Recorded = tuple[list[list[int]], list[dict[str, Any]]]
"""What was recorded for one prompt: its asserted spans and its ambiguous runs."""


def of_nodes(nodes: Sequence[Node]) -> list[Recorded]:
    return [(n.context_spans, n.meta.get("ambiguous") or []) for n in nodes]


def _flagged(ambiguous: list[dict[str, Any]], text: str, start: int, end: int) -> bool:
    """A flagged run's text occurs overlapping the piece (its listed places may stop short)."""
    for item in ambiguous:
        run = text[item["start"] : item["end"]]
        at = text.find(run, max(0, start - len(run) + 1), end + len(run) - 1)
        if at >= 0 and at < end and start < at + len(run):
            return True
    return False


def joined(ranges: Sequence[Sequence[int]], text: str) -> list[list[int]]:
    """True ranges with neighbours one line break apart joined: lines that follow each other in
    the document, sent joined by that line break, are one range of it."""
    out: list[list[int]] = []
    for s, e in sorted(list(r) for r in ranges):
        if out and text[out[-1][1] : s] in ("", "\n"):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def score(
    recorded: Sequence[Recorded], truth: Sequence[Sequence[Sequence[int]]], text: str, into: Score
) -> Score:
    """Hold each prompt's recorded spans against its true ranges (both in prompt order)."""
    assert len(recorded) == len(truth), (len(recorded), len(truth))
    for (spans, ambiguous), pieces in zip(recorded, truth, strict=True):
        true = joined(pieces, text)
        into.calls += 1
        asserted = sum(e - s for s, e in spans)
        inside = sum(_overlap(true, s, e) for s, e in spans)
        into.asserted_chars += asserted
        into.phantom_chars += asserted - inside
        if asserted > inside:
            into.outside += 1
            if len(into.examples) < 5:
                into.examples.append(f"true {list(true)[:3]} recorded {spans[:4]}")
        for s, e in pieces:
            if e <= s:
                continue
            into.pieces += 1
            share = _overlap(spans, s, e) / (e - s)
            into.covered.append(share)
            if share < 0.99 and _flagged(ambiguous, text, s, e):
                into.flagged += 1
    return into


def root_running(cells: Sequence[str]) -> Any:
    """A model factory: the root runs `cells` in turns (each ends by sending `prompts` as one
    batch), then answers; the sub model says how much it read (a text found nowhere else)."""

    def root(messages: list[dict[str, Any]]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn < len(cells):
            return f"```repl\n{cells[turn]}\nanswers = llm_query_batched(prompts)\n```"
        return "```repl\nFINAL('done')\n```"

    def make(name: str, role: Role) -> Model:
        return ScriptedModel(name, root if role == "root" else _sub)

    return make


def _sub(messages: list[dict[str, Any]]) -> str:
    return f"checked {len(messages[-1]['content']):,} characters"


def run_shapes(context: Any, shapes: Sequence[Shape], traces_dir: Any) -> list[list[Node]]:
    """Run the shapes' cells in one RLM on the real REPL worker; the sub-calls of each cell."""
    models = root_running([s.code for s in shapes])
    rlm = RLM("scripted/root", "scripted/sub", models=models, traces_dir=traces_dir)
    result = rlm.run(context, "What went wrong?")
    assert result.status == "ok", result
    store = TraceStore(traces_dir)
    try:
        full = (store.node(n.node_id) for n in store.nodes(result.run_id))
        nodes = [n for n in full if n is not None]
    finally:
        store.close()
    cells = sorted((n for n in nodes if n.kind == "code" and n.depth == 0), key=lambda n: n.node_id)
    return [
        sorted(
            (n for n in nodes if n.parent_id == cell.node_id and n.kind == "llm_query"),
            key=lambda n: n.meta.get("batch_index", 0),
        )
        for cell in cells[: len(shapes)]
    ]
