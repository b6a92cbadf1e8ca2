"""Plain-words narration of a run for the Learn page: which RLM pattern each node shows (probe,
filter, chunk, map, reduce, verify, recurse) and what happened, plus the bundled example runs.

`python scripts/record_learn.py` re-records examples/learn/*.jsonl with the demo models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlm_core.analysis.insight import SUB_CALL_KINDS, coverage
from rlm_core.engine.spans import merge_spans
from rlm_core.types import Node

LEARN_DIR = Path(__file__).resolve().parents[2] / "examples" / "learn"
"""The recorded runs the Learn page walks through (re-record: python scripts/record_learn.py)."""
EXAMPLE_CHARS = 200_000
QUESTION = "What is the secret code?"

PATTERNS: dict[str, str] = {
    "probe": "look at the context's type, size and a small sample instead of reading all of it",
    "filter": "search the context with code (a regular expression, keywords) so that only "
    "promising parts go on",
    "chunk": "cut the text into pieces small enough for one model call",
    "map": "ask a sub model the same question about every piece, all at once",
    "reduce": "combine the answers that came back (now held in REPL variables) into one",
    "verify": "ask a model to check a candidate answer against the text",
    "recurse": "hand a piece to a child RLM, which gets that piece as its own `context` and its "
    "own REPL",
}
"""Pattern name -> what it means, in the order a typical run uses them."""

_CALL = r"\bllm_query\s*\("
_RULES: dict[str, re.Pattern[str]] = {
    "probe": re.compile(
        r"print\([^\n]*\b(len|type)\(\s*context\b|print\([^\n]*\[\s*-?\d*\s*:\s*-?\d+\s*\]|"
        r"\bSHOW_VARS\(|\bcontext\.keys\(",
    ),
    "filter": re.compile(
        r"\bre\.(search|findall|finditer|compile|match|fullmatch)\(|\.find\(|"
        r"\bif\s+['\"][^'\"\n]+['\"]\s+in\b|"
        r"\bif\b[^\n]*\bin\b[^\n]*\b(line|lines|text|context|doc|chunk)\b",
    ),
    "chunk": re.compile(
        r"\b\w*chunks?\w*\s*=(?!=)|\brange\(\s*0\s*,\s*len\(|\[\s*\w+\s*:\s*\w+\s*\+\s*\w+\s*\]|"
        r"\[\s*\w+\s*:\s*\w+\s*\]\s*for\b|\bsplit\(\s*['\"]\\n\\n['\"]\s*\)",
    ),
    "map": re.compile(
        r"\bllm_query_batched\s*\(|\bfor\b[^\n]*:\s*\n[^\n]*"
        + _CALL
        + r"|"
        + _CALL
        + r"[^\n]*\bfor\b"
    ),
    "verify": re.compile(r"verif|\bcheck|confirm|double.?check|is (this|it) (correct|right)", re.I),
    "recurse": re.compile(r"\brlm_query(_batched)?\s*\("),
    "reduce": re.compile(
        r"\bCounter\(|\bmax\(|\bsum\(|\bsorted\(|\.count\(|\.join\(|\bmost_common\(|\bset\("
    ),
}
_FINAL = re.compile(r"\bFINAL(_VAR)?\s*\(")
_IDENT = re.compile(r"^[A-Za-z_]\w{0,40}$")


def code_patterns(code: str, sub_calls: Sequence[Node] = ()) -> list[str]:
    """The patterns a code cell shows, in canonical order; its sub-calls confirm map/recurse."""
    found = {name for name, rule in _RULES.items() if name != "reduce" and rule.search(code)}
    kinds = {n.kind for n in sub_calls}
    if "rlm_query" in kinds:
        found.add("recurse")
    if any(n.kind == "llm_query" and (n.meta.get("batch_size") or 1) > 1 for n in sub_calls):
        found.add("map")
    if "recurse" in found:
        found.discard("map")  # a batch of child RLMs is the recursion, not a plain map
    # verify only for a single question to a model: a batched call over chunks is a map
    single_call = re.search(_CALL, code) and "map" not in found and "recurse" not in found
    if not single_call:
        found.discard("verify")
    # combining answers means aggregation on the way to FINAL, or over earlier answers
    combines = _RULES["reduce"].search(code) and (
        _FINAL.search(code) or re.search(r"\b(answers|results|outputs|found)\b", code)
    )
    if combines and not {"map", "recurse"} & found:
        found.add("reduce")
    return [name for name in PATTERNS if name in found]


def _ident(name: object) -> str:
    """A variable name fit for markdown, or "?" (names come from model-written code)."""
    text = str(name)
    return text if _IDENT.match(text) else "?"


def _chars(spans: Sequence[Sequence[int]]) -> int:
    return sum(max(0, int(e) - int(s)) for s, e in merge_spans(spans))


def _pct(part: int, total: int) -> str:
    if not total:
        return "?"
    share = 100 * part / total
    return f"{share:.0f}%" if share >= 10 else f"{share:.2g}%"


@dataclass(frozen=True)
class Step:
    node_id: str
    title: str
    patterns: list[str]
    text: str
    """Markdown written by us: numbers and sanitised identifiers only, never node texts."""


def _run_step(n: Node, total: int) -> tuple[str, list[str], str]:
    chars = int(n.meta.get("context_chars") or total)
    if n.parent_id is None:
        return (
            "The run starts: the document becomes a variable",
            [],
            f"The document ({chars:,} characters) is loaded into a Python REPL as the variable "
            "`context`. The root model is **not** given the text: it gets the question, the "
            "context's type and length, and instructions for using the REPL. Everything it learns "
            "about the document, it learns by writing code.",
        )
    return (
        f"A child RLM starts at depth {n.depth}",
        ["recurse"],
        f"This child is a complete RLM of its own: its `context` is the {chars:,}-character "
        "piece its parent handed over, in a fresh REPL, and its root model again sees only the "
        "size of that piece. What it returns becomes one string in the parent's code.",
    )


def _lm_step(n: Node, nodes: Sequence[Node]) -> tuple[str, list[str], str]:
    earlier = [
        c
        for c in nodes
        if c.kind == "code" and c.parent_id == n.parent_id and c.node_id < n.node_id
    ]
    shown = _chars([s for c in earlier for s in c.meta.get("shown_spans") or []])
    turn = n.meta.get("iteration", "?")
    return (
        f"The root model's turn {turn}: it writes code",
        [],
        "The root model is called with the question, the system prompt and the (truncated) "
        f"output of its earlier cells. So far it has been shown {shown:,} characters of the "
        "document itself. It answers with a short plan and a ```repl``` code block, which the "
        "next step runs.",
    )


def _code_step(n: Node, nodes: Sequence[Node], total: int) -> tuple[str, list[str], str]:
    subs = [c for c in nodes if c.parent_id == n.node_id and c.kind in SUB_CALL_KINDS]
    found = code_patterns(n.code or "", subs)
    if _FINAL.search(n.code or "") and not found:
        found = ["reduce"]
    parts = [f"**{name}**: {PATTERNS[name]}." for name in found] or [
        "This cell computes something with the REPL's variables."
    ]
    read, shown = _chars(n.context_spans), _chars(n.meta.get("shown_spans") or [])
    if read:
        facts = f"The code read {read:,} characters of the document ({_pct(read, total)})"
        facts += f" and printed {shown:,} of them back to the root model." if shown else "."
    else:
        facts = "It did not touch `context` itself: it works on variables made earlier."
    parts.append(facts)
    if subs:
        kinds = sorted({s.kind for s in subs})
        batched = any((s.meta.get("batch_size") or 1) > 1 for s in subs)
        parts.append(
            f"It made {len(subs)} sub-call(s) ({', '.join(kinds)})"
            + (", run concurrently as one batch." if batched else ".")
        )
    assigned = n.meta.get("assignments") or {}
    if isinstance(assigned, dict) and assigned:
        names = ", ".join(f"`{_ident(k)}`" for k in list(assigned)[:6])
        parts.append(f"Sub-call answers now live in the variables {names}.")
    if n.meta.get("shown_spans") == [] and read:
        parts.append("The root model saw only the cell's short printout, not the text it read.")
    title = f"Code runs: {', '.join(found)}" if found else "Code runs"
    return title, found, " ".join(parts)


def _sub_step(n: Node, nodes: Sequence[Node], total: int) -> tuple[str, list[str], str]:
    seen = _chars(n.context_spans)
    used = n.meta.get("used_by")
    in_final = any(n.node_id in (f.meta.get("sources") or []) for f in nodes if f.kind == "final")
    if isinstance(used, list) and used:
        went = "Its answer went into the variable(s) " + ", ".join(
            f"`{_ident(v)}`" for v in used[:5]
        )
        went += " and from there into the final answer." if in_final else "."
    elif used == [] and not in_final:
        went = "Its answer was not kept in any variable: it was dropped."
    else:
        went = "Its answer reached the final answer." if in_final else ""
    batch = n.meta.get("batch_size")
    where = f" (item {n.meta.get('batch_index')} of a batch of {batch})" if batch else ""
    if n.kind == "rlm_query":
        return (
            "A child RLM is asked" + where,
            ["recurse"],
            f"Instead of one model call, the code hands {seen:,} characters of the document "
            f"({_pct(seen, total)}) to a child RLM, which explores them with code of its own. "
            + went,
        )
    return (
        "A sub-model call" + where,
        ["map"] if batch and batch > 1 else [],
        f"The sub model gets a prompt holding {seen:,} characters of the document "
        f"({_pct(seen, total)}): a small slice, chosen by code, that fits its window. " + went,
    )


def _final_step(n: Node, nodes: Sequence[Node], total: int) -> tuple[str, list[str], str]:
    var, sources = n.meta.get("var"), n.meta.get("sources") or []
    how = f"the variable `{_ident(var)}` (`FINAL_VAR`)" if var else "`FINAL(...)`"
    seen = sum(s["end"] - s["start"] for s in coverage(nodes, total) if s["state"] == "model")
    return (
        "The answer",
        ["reduce"],
        f"The run ends with {how}, built from {len(sources)} sub-call answer(s). Models saw "
        f"{seen:,} of {total:,} characters ({_pct(seen, total)}) of the document: the answer was "
        "assembled in variables, not by reading everything.",
    )


def _run_of(node: Node, nodes: Sequence[Node]) -> Node | None:
    by_id = {n.node_id: n for n in nodes}
    up: Node | None = by_id.get(node.parent_id or "")
    while up is not None and up.kind != "run":
        up = by_id.get(up.parent_id or "")
    return up


def narrate(node: Node, nodes: Sequence[Node], total: int) -> Step:
    """One step of the walkthrough; `total` is the length of the root context in characters."""
    if node.kind == "run":
        title, found, text = _run_step(node, total)
    elif node.kind == "lm":
        title, found, text = _lm_step(node, nodes)
    elif node.kind == "code":
        title, found, text = _code_step(node, nodes, total)
    elif node.kind in SUB_CALL_KINDS:
        title, found, text = _sub_step(node, nodes, total)
    elif node.kind == "final":
        title, found, text = _final_step(node, nodes, total)
    else:
        title, found, text = "A node", [], "Nothing to say about this kind of node."
    owner = _run_of(node, nodes)
    if owner is not None and owner.parent_id is not None and node.kind != "run":
        title += f" (inside a child RLM, depth {owner.depth})"
    return Step(node.node_id, title, found, text)


def pair_outcome(sides: Sequence[tuple[str, float | None]]) -> str | None:
    """One sentence on which runs of a Learn pair found the expected answer (the names are our
    strategy labels); None when the expected answer is not known."""
    if not sides or any(points is None for _, points in sides):
        return None
    right = [name for name, points in sides if points is not None and points >= 0.999]
    wrong = [name for name, _ in sides if name not in right]
    if not wrong:
        return "Both runs found the expected answer."
    if not right:
        return (
            "Both runs missed the expected answer here: the demo models cannot answer this "
            "question, so the pair shows what each run read, not which one is right."
        )
    return f"{' and '.join(wrong)} missed the expected answer; {' and '.join(right)} found it."


# ---- the bundled examples --------------------------------------------------------------------

EXAMPLES = {
    "needle.jsonl": "Find a needle: probe, filter, chunk, map, reduce",
    "recursive.jsonl": "Recursion: the same search handed to child RLMs",
}


def example_run_id(path: Path) -> str | None:
    """The run id in the header line of one of our JSONL exports."""
    with path.open(encoding="utf-8") as f:
        head = json.loads(f.readline() or "{}")
    run_id = head.get("run_id") if isinstance(head, dict) else None
    return run_id if isinstance(run_id, str) else None
