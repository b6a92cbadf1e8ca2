"""Failure linter: patterns in a run tree that usually mean the answer deserves less trust, or the
run wasted budget. Each finding names the nodes to look at; it is advice, not an error.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rlm_core.analysis.insight import SUB_CALL_KINDS, where_is
from rlm_core.engine.fits import NOT_SENT
from rlm_core.models.facts import CHARS_PER_TOKEN, context_window
from rlm_core.types import Node

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    node_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_of(node: Node, by_id: dict[str, Node]) -> str | None:
    """The run node a node belongs to (its nearest run ancestor, itself for a run)."""
    up: Node | None = node
    while up is not None and up.kind != "run":
        up = by_id.get(up.parent_id or "")
    return up.node_id if up is not None else None


def _final_unread(nodes: Sequence[Node], by_id: dict[str, Node]) -> list[Finding]:
    out = []
    for final in (n for n in nodes if n.kind == "final"):
        run = by_id.get(final.parent_id or "")
        call = by_id.get(run.parent_id or "") if run is not None else None
        if run is None or (run.parent_id is not None and not (call and call.context_spans)):
            continue  # a child whose context is not a piece of the original: no positions
        # code cells of this RLM and the sub-calls they made, up to the answer
        read = any(
            n.node_id < final.node_id
            and n.context_spans
            and (n.kind == "code" or n.kind in SUB_CALL_KINDS)
            and _run_of(n, by_id) == run.node_id
            for n in nodes
        )
        if not read:
            out.append(
                Finding(
                    "final_unread",
                    "warning",
                    "The answer was given before any code or sub-call read the context.",
                    [final.node_id],
                )
            )
    return out


def _unused_results(nodes: Sequence[Node]) -> list[Finding]:
    sources = {s for n in nodes if n.kind == "final" for s in n.meta.get("sources") or []}
    dropped = [
        n.node_id
        for n in nodes
        if n.kind in SUB_CALL_KINDS
        and n.status == "ok"
        and n.meta.get("used_by") == []
        and n.node_id not in sources
    ]
    if not dropped:
        return []
    return [
        Finding(
            "unused_result",
            "info",
            f"{len(dropped)} sub-call result(s) never reached a variable or the answer: "
            "the calls were paid for and dropped.",
            dropped,
        )
    ]


def _repeated_calls(nodes: Sequence[Node], by_id: dict[str, Node]) -> list[Finding]:
    """The same prompt to the same model more than once. A child RLM's question goes with its
    context: the same question over different chunks (rlm_query_batched) is a map, not a repeat."""
    groups: dict[tuple[str, str | None, str, str], list[str]] = defaultdict(list)
    for n in nodes:
        if n.kind in SUB_CALL_KINDS and n.input:
            child = by_id.get(str(n.meta.get("child_run")))
            context = ""  # an llm_query's prompt is all its model sees
            if n.kind == "rlm_query":
                context = str(child.meta.get("context_sha") if child else n.context_spans)
            groups[(n.kind, n.model, n.input, context)].append(n.node_id)
    return [
        Finding(
            "repeated_call",
            "warning",
            f"The same {kind} prompt ({len(prompt):,} chars) was sent {len(ids)} times"
            f"{f' to {model}' if model else ''}.",
            ids,
        )
        for (kind, model, prompt, _), ids in groups.items()
        if len(ids) > 1
    ]


def _oversized_prompts(nodes: Sequence[Node]) -> list[Finding]:
    out = []
    windows: dict[str, int | None] = {}
    for n in nodes:
        if n.kind != "llm_query" or not n.model or not n.input:
            continue
        if n.model not in windows:
            windows[n.model] = context_window(n.model)
        window, tokens = windows[n.model], len(n.input) // CHARS_PER_TOKEN
        if window is None or tokens <= window:
            continue
        failed = n.status == "error"
        caused = f" It failed: {(n.error or '').splitlines()[0][:200]}" if failed else ""
        went = "was refused before it reached" if NOT_SENT in (n.error or "") else "was sent to"
        out.append(
            Finding(
                "prompt_too_large",
                "error" if failed else "warning",
                f"A prompt of ~{tokens:,} tokens {went} {n.model}, whose window is "
                f"{window:,} tokens.{caused}",
                [n.node_id],
            )
        )
    return out


def _blind_calls(nodes: Sequence[Node]) -> list[Finding]:
    blind = [n.node_id for n in nodes if n.kind == "llm_query" and n.meta.get("no_context_text")]
    if not blind:
        return []
    message = (
        f"{len(blind)} llm_query prompt(s) held no text of the context: the sub model cannot "
        "see `context`, so it was asked to guess. Its answers are not evidence."
    )
    return [Finding("blind_subcall", "warning", message, blind)]


def _error_line(error: str) -> str:
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _repeated_errors(nodes: Sequence[Node], by_id: dict[str, Node]) -> list[Finding]:
    seen: dict[tuple[str | None, str], dict[Any, str]] = defaultdict(dict)
    for n in sorted((n for n in nodes if n.kind == "code" and n.error), key=lambda n: n.node_id):
        key = (_run_of(n, by_id), _error_line(n.error or ""))
        seen[key].setdefault(n.meta.get("iteration"), n.node_id)
    return [
        Finding(
            "repeated_error",
            "warning",
            f"The same error came back in {len(turns)} turns: {line[:200]}",
            list(turns.values()),
        )
        for (_, line), turns in seen.items()
        if len(turns) > 1 and line
    ]


def _no_progress(nodes: Sequence[Node], by_id: dict[str, Node]) -> list[Finding]:
    turns: dict[str | None, dict[int, list[Node]]] = defaultdict(lambda: defaultdict(list))
    for n in sorted((n for n in nodes if n.kind == "code"), key=lambda n: n.node_id):
        turns[_run_of(n, by_id)][int(n.meta.get("iteration") or 0)].append(n)
    out = []
    for by_turn in turns.values():
        order = sorted(by_turn)
        for a, b in itertools.pairwise(order):
            view_a = "\n".join(n.model_view or "" for n in by_turn[a])
            view_b = "\n".join(n.model_view or "" for n in by_turn[b])
            if b == a + 1 and view_a.strip() and view_a == view_b:
                ids = [n.node_id for n in by_turn[a] + by_turn[b]]
                out.append(
                    Finding(
                        "no_progress",
                        "warning",
                        f"Turns {a} and {b} showed the root model the same output.",
                        ids,
                    )
                )
    return out


def _limits(nodes: Sequence[Node]) -> list[Finding]:
    out = []
    for run in (n for n in nodes if n.kind == "run" and n.meta.get("limit")):
        hit = [
            n.node_id
            for n in nodes
            if n.status == "limit" and n.kind != "run" and n.run_id == run.run_id
        ]
        where = "the run" if run.parent_id is None else f"a child RLM (depth {run.depth})"
        ids = [run.node_id, *hit] if run.parent_id is None else [run.node_id]
        message = f"{where} ended on the limit {run.meta['limit']}: the answer is partial."
        out.append(Finding("limit_hit", "warning", message, ids))
    return out


_SET_ASIDE = {
    "ignored_text_finals": (
        "ignored_text_final",
        "A FINAL written as text next to code was ignored in turn(s) {turns}: the model may "
        "have answered before seeing its code's output.",
    ),
    "refused_guesses": (
        "refused_guess",
        "The model answered right after a search that found nothing in turn(s) {turns}; the "
        "answer was refused as a guess. Check what it searched for.",
    ),
}


def _set_aside_answers(nodes: Sequence[Node]) -> list[Finding]:
    """Answers the engine did not take (recorded on the run node by turn)."""
    return [
        Finding(rule, "info", text.format(turns=", ".join(map(str, n.meta[key]))), [n.node_id])
        for n in nodes
        if n.kind == "run"
        for key, (rule, text) in _SET_ASIDE.items()
        if n.meta.get(key)
    ]


def _needles(nodes: Sequence[Node], needles: Sequence[str], text: str) -> list[Finding]:
    out = []
    for needle in (x for x in needles if x):
        hits = where_is(text, needle, nodes)
        if not hits:
            out.append(
                Finding("needle_absent", "info", f"{needle!r} does not occur in the context.")
            )
            continue
        if not any(h["seen_by_model"] or h["shown_to_root"] for h in hits):
            readers = sorted({i for h in hits for i in h["read_by_code"]})
            how = "only code read it" if readers else "nothing read it"
            maybe = {i for h in hits for i in h["maybe_seen_by_model"]}
            if maybe:
                how += (
                    f"; {len(maybe)} sub-call(s) saw the same text at a place the trace could "
                    "not tell"
                )
            out.append(
                Finding(
                    "needle_unseen",
                    "warning",
                    f"{needle!r} occurs {len(hits)} time(s) in the context but no model "
                    f"call ever saw it ({how}).",
                    readers,
                )
            )
    return out


def lint(
    nodes: Sequence[Node], needles: Sequence[str] = (), context_text: str | None = None
) -> list[Finding]:
    """Findings for a run tree, most severe first. Needles are checked only with the context."""
    by_id = {n.node_id: n for n in nodes}
    found = [
        *_final_unread(nodes, by_id),
        *_unused_results(nodes),
        *_repeated_calls(nodes, by_id),
        *_oversized_prompts(nodes),
        *_blind_calls(nodes),
        *_repeated_errors(nodes, by_id),
        *_no_progress(nodes, by_id),
        *_limits(nodes),
        *_set_aside_answers(nodes),
        *(_needles(nodes, needles, context_text) if context_text is not None else []),
    ]
    rank = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: rank[f.severity])
