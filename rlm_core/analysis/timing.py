"""Where a run's time went: per root call, how much of its prompt was new and how much a
server's prefix cache could reuse; per run, the time in root calls, sub-calls and code.

For a small model served on a CPU, reading the prompt is most of the time (35 tokens/s on 2
cores), so these are the numbers that say why a question took two minutes instead of twenty
seconds: a long fixed prompt, a cache that did not hit, or too many turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rlm_core.types import Node

SUB_CALLS = ("llm_query", "rlm_query")


def _seconds(node: Node) -> float:
    if node.latency_s is not None:
        return node.latency_s
    if node.started_at is not None and node.ended_at is not None:
        return max(0.0, node.ended_at - node.started_at)
    return 0.0


def prompt_line(node: Node) -> str | None:
    """One line on a model call's prompt: how much was new, shared and cached; None if unknown."""
    if node.tokens_in is None:
        return None
    prefix = node.meta.get("prefix_tokens")
    parts = [f"prompt {node.tokens_in:,} tokens"]
    if isinstance(prefix, int):
        shared = min(prefix, node.tokens_in)
        parts.append(f"{node.tokens_in - shared:,} new, {shared:,} as in the previous turn")
    cached = node.meta.get("cached_tokens")
    if isinstance(cached, int):
        parts.append(f"{cached:,} served from the provider's cache")
    return " · ".join(parts)


def where_time_went(nodes: Iterable[Node]) -> dict[str, Any]:
    """Totals over a run tree: turns, prompt tokens (new vs. reusable), seconds per kind."""
    nodes = list(nodes)
    lms = [n for n in nodes if n.kind == "lm"]
    prompt = sum(n.tokens_in or 0 for n in lms)
    reusable = sum(min(int(n.meta.get("prefix_tokens") or 0), n.tokens_in or 0) for n in lms)
    return {
        "root calls": len(lms),
        "root prompt tokens": prompt,
        "of which new": prompt - reusable,
        "root output tokens": sum(n.tokens_out or 0 for n in lms),
        "cached (reported)": sum(int(n.meta.get("cached_tokens") or 0) for n in nodes),
        "root calls s": round(sum(_seconds(n) for n in lms), 1),
        "sub-calls": sum(1 for n in nodes if n.kind in SUB_CALLS),
        "sub-calls s": round(sum(_seconds(n) for n in nodes if n.kind == "llm_query"), 1),
        "code s": round(sum(_seconds(n) for n in nodes if n.kind == "code"), 1),
    }
