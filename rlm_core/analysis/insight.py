"""What a run tree adds up to, from its nodes alone: cost and time rollups, a timeline, budget use,
which parts of the context were read and by whom, and a cost estimate before a run.

Pure functions over `Node` lists (no Streamlit): the Explorer panels and the linter read them.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rlm_core.engine import prompts
from rlm_core.engine.spans import merge_spans
from rlm_core.models.facts import CHARS_PER_TOKEN, context_window, price_per_token
from rlm_core.types import Node

SUB_CALL_KINDS = ("llm_query", "rlm_query")
WHERE_IS_CAP = 200
ROLES = {"lm": "root", "llm_query": "sub"}
"""A child RLM's lm calls count as root calls: they are that child's root model."""

# ---- span arithmetic ---------------------------------------------------------------------------


def _covers(spans: Iterable[Sequence[int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _overlaps(spans: Iterable[Sequence[int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


# ---- rollups -----------------------------------------------------------------------------------


def made_call(node: Node) -> bool:
    """A model call that was sent (calls refused by a limit end as "not called: ...")."""
    return node.kind in ROLES and not (node.error or "").startswith("not called")


@dataclass
class Usage:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    """None as soon as one answered call had no known cost (never counted as zero)."""
    latency_s: float = 0.0
    """Model latency summed over calls: concurrent calls add up beyond the wall-clock time."""

    def add(self, node: Node) -> None:
        if not made_call(node):
            return
        self.calls += 1
        self.tokens_in += node.tokens_in or 0
        self.tokens_out += node.tokens_out or 0
        self.latency_s += node.latency_s or 0.0
        # a failed call returned nothing to bill; an answered one without a price is unknown
        if node.status != "error" and self.cost_usd is not None:
            self.cost_usd = None if node.cost_usd is None else self.cost_usd + node.cost_usd


@dataclass
class Rollup:
    node_id: str
    kind: str
    inclusive: Usage = field(default_factory=Usage)
    """The node and everything below it."""
    exclusive: Usage = field(default_factory=Usage)
    """The node's own model call, if it is one."""
    root: Usage = field(default_factory=Usage)
    sub: Usage = field(default_factory=Usage)
    wall_s: float | None = None
    self_wall_s: float | None = None
    """Wall time not covered by any child (a code cell's own compute, without its sub-calls)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _children(nodes: Iterable[Node]) -> dict[str | None, list[Node]]:
    kids: dict[str | None, list[Node]] = defaultdict(list)
    for n in nodes:
        kids[n.parent_id].append(n)
    return kids


def subtree(top: Node, nodes: Iterable[Node]) -> list[Node]:
    """`top` and every node below it."""
    return _subtree(_children(nodes), top)


def _subtree(kids: dict[str | None, list[Node]], top: Node) -> list[Node]:
    out, stack = [], [top]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(kids.get(n.node_id, ()))
    return out


def _end(node: Node, now: float) -> float:
    return node.ended_at if node.ended_at is not None else now


def _latest(nodes: Sequence[Node]) -> float:
    return max((t for n in nodes for t in (n.started_at, n.ended_at) if t is not None), default=0)


def rollup(nodes: Sequence[Node], node_id: str) -> Rollup:
    """Tokens, cost and time of the subtree under `node_id`, split by root and sub model."""
    by_id = {n.node_id: n for n in nodes}
    top, kids, now = by_id[node_id], _children(nodes), _latest(nodes)
    out = Rollup(node_id=node_id, kind=top.kind)
    out.exclusive.add(top)
    for n in _subtree(kids, top):
        out.inclusive.add(n)
        if n.kind in ROLES:
            (out.root if ROLES[n.kind] == "root" else out.sub).add(n)
    out.wall_s = _end(top, now) - top.started_at
    covered = merge_spans(  # in microseconds: spans are integer ranges
        [int(max(c.started_at, top.started_at) * 1e6), int(min(_end(c, now), _end(top, now)) * 1e6)]
        for c in kids.get(node_id, ())
    )
    out.self_wall_s = max(0.0, out.wall_s - sum(e - s for s, e in covered) / 1e6)
    return out


def run_summary(nodes: Sequence[Node]) -> dict[str, Any]:
    """Totals of a whole run tree, per role and per model, plus one rollup per child RLM."""
    root = next((n for n in nodes if n.kind == "run" and n.parent_id is None), None)
    if root is None:
        return {}
    top = rollup(nodes, root.node_id)
    by_model: dict[str, Usage] = defaultdict(Usage)
    counts: dict[str, int] = defaultdict(int)
    for n in nodes:
        counts[n.kind] += 1
        if n.kind in ROLES:
            by_model[n.model or "?"].add(n)
    children = [
        rollup(nodes, n.node_id).to_dict() | {"depth": n.depth, "question": n.input}
        for n in nodes
        if n.kind == "run" and n.parent_id is not None
    ]
    return {
        "run_id": root.run_id,
        "status": root.status,
        "limit": root.meta.get("limit"),
        "iterations": root.meta.get("iterations"),
        "max_depth": max((n.depth for n in nodes if n.kind == "run"), default=0),
        "wall_s": top.wall_s,
        "total": asdict(top.inclusive),
        "root": asdict(top.root),
        "sub": asdict(top.sub),
        "by_model": {m: asdict(u) for m, u in sorted(by_model.items())},
        "counts": dict(counts),
        "children": children,
    }


# ---- timeline and budget -----------------------------------------------------------------------


def _label(n: Node) -> str:
    if n.kind == "code":
        return f"cell {n.meta.get('iteration', '?')}.{n.meta.get('block', '?')}"
    if n.kind == "lm":
        return f"{n.model or 'root'} · turn {n.meta.get('iteration', '?')}"
    where = f" · batch #{n.meta['batch_index']}" if "batch_index" in n.meta else ""
    return f"{n.model or 'sub'} · {len(n.input or ''):,} chars{where}"


def timeline(nodes: Sequence[Node]) -> list[dict[str, Any]]:
    """One bar per model call and code cell; times in seconds from the run's start, lane = depth."""
    bars = [n for n in nodes if n.kind in ("lm", "llm_query", "code")]
    if not nodes:
        return []
    t0, now = min(n.started_at for n in nodes), _latest(nodes)
    return [
        {
            "node_id": n.node_id,
            "parent_id": n.parent_id,
            "kind": n.kind,
            "label": _label(n),
            "model": n.model,
            "status": n.status,
            "lane": n.depth,
            "start": n.started_at - t0,
            "end": _end(n, now) - t0,
            "running": n.ended_at is None,
        }
        for n in sorted(bars, key=lambda n: (n.started_at, n.node_id))
    ]


LIMITS = ("max_iterations", "max_depth", "max_llm_calls", "max_tokens", "max_cost_usd", "timeout_s")


def _fired_at(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """limit name -> run nodes that ended on it, then the nodes that hit it (status "limit")."""
    by_id = {n.node_id: n for n in nodes}
    fired: dict[str, list[str]] = defaultdict(list)
    for n in nodes:
        if n.kind == "run" and n.meta.get("limit"):
            fired[n.meta["limit"]].append(n.node_id)
    root_limit = next(
        (n.meta.get("limit") for n in nodes if n.kind == "run" and n.parent_id is None), None
    )
    for n in nodes:
        if n.status != "limit" or n.kind == "run":
            continue
        up = by_id.get(n.parent_id or "")
        while up is not None and up.kind != "run":
            up = by_id.get(up.parent_id or "")
        limit = (up.meta.get("limit") if up is not None else None) or root_limit
        if limit:
            fired[limit].append(n.node_id)
    return fired


def budget(nodes: Sequence[Node], config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """For each limit: allowed, used, fraction, and whether and where it fired."""
    runs = [n for n in nodes if n.kind == "run"]
    root = next((n for n in runs if n.parent_id is None), None)
    config = config or (root.meta.get("config", {}) if root else {})
    total = Usage()
    for n in nodes:
        total.add(n)
    iterations = [int(r.meta.get("iterations") or 0) for r in runs]
    used: dict[str, Any] = {
        "max_iterations": max(iterations, default=0),
        "max_depth": max((r.depth for r in runs), default=0),
        "max_llm_calls": total.calls,
        "max_tokens": total.tokens_in + total.tokens_out,
        "max_cost_usd": total.cost_usd,
        "timeout_s": (_end(root, _latest(nodes)) - root.started_at) if root else None,
    }
    fired = _fired_at(nodes)
    rows = []
    for name in LIMITS:
        allowed, value = config.get(name), used[name]
        share = value / allowed if allowed and value is not None else None
        rows.append(
            {
                "limit": name,
                "allowed": allowed,
                "used": value,
                "fraction": share,
                "fired": name in fired,
                "node_ids": fired.get(name, []),
            }
        )
    return rows


# ---- coverage ----------------------------------------------------------------------------------


def _model_spans(n: Node) -> list[list[int]]:
    """What a model saw: a sub-call's prompt, or context text printed to the root by a cell."""
    if n.kind in SUB_CALL_KINDS:
        return n.context_spans
    return list(n.meta.get("shown_spans") or []) if n.kind == "code" else []


def coverage(nodes: Sequence[Node], context_chars: int) -> list[dict[str, Any]]:
    """The context split into merged segments: "model" (a model saw it: sub-call prompts, output
    shown to the root), "code" (only code read it) or "never"."""
    clip = lambda s: [max(0, s[0]), min(context_chars, s[1])]  # noqa: E731
    model = merge_spans(clip(s) for n in nodes for s in _model_spans(n))
    code = merge_spans(clip(s) for n in nodes if n.kind == "code" for s in n.context_spans)
    cuts = sorted({0, context_chars, *(p for s in model + code for p in s)})
    out: list[dict[str, Any]] = []
    mi = ci = 0
    for a, b in itertools.pairwise(cuts):
        while mi < len(model) and model[mi][1] <= a:
            mi += 1
        while ci < len(code) and code[ci][1] <= a:
            ci += 1
        in_model = mi < len(model) and model[mi][0] <= a
        state = "model" if in_model else "code" if ci < len(code) and code[ci][0] <= a else "never"
        if out and out[-1]["state"] == state:
            out[-1]["end"] = b
        else:
            out.append({"start": a, "end": b, "state": state})
    return out


def _may_cover(node: Node, start: int, end: int) -> bool:
    """A run of the node's text that occurs at several places, one of them around [start, end)."""
    return any(
        q <= start and end <= q + int(i["end"]) - int(i["start"])
        for i in node.meta.get("ambiguous") or []
        for q in i.get("places") or []
    )


def where_is(
    context_text: str, needle: str, nodes: Sequence[Node], cap: int = WHERE_IS_CAP
) -> list[dict[str, Any]]:
    """Every occurrence of `needle` (up to `cap`): which sub-calls saw all of it, which code
    cells read any of it, which cells printed all of it to the root model, and which sub-calls
    saw the same text at a place the trace could not tell (meta.ambiguous)."""
    out: list[dict[str, Any]] = []
    at = context_text.find(needle) if needle else -1
    while at >= 0 and len(out) < cap:
        end = at + len(needle)
        out.append(
            {
                "start": at,
                "end": end,
                "seen_by_model": [
                    n.node_id
                    for n in nodes
                    if n.kind in SUB_CALL_KINDS and _covers(n.context_spans, at, end)
                ],
                "read_by_code": [
                    n.node_id
                    for n in nodes
                    if n.kind == "code" and _overlaps(n.context_spans, at, end)
                ],
                "shown_to_root": [
                    n.node_id
                    for n in nodes
                    if n.kind == "code" and _covers(n.meta.get("shown_spans") or [], at, end)
                ],
                "maybe_seen_by_model": [
                    n.node_id for n in nodes if n.kind in SUB_CALL_KINDS and _may_cover(n, at, end)
                ],
            }
        )
        at = context_text.find(needle, at + 1)
    return out


# ---- estimate ----------------------------------------------------------------------------------

TYPICAL_HISTORY_TOKENS = 3_000
"""Transcript a root call carries besides the system prompt: code and truncated outputs."""
TYPICAL_ROOT_OUTPUT_TOKENS = 400
CHUNK_OVERHEAD_TOKENS = (200, 300)
"""Per sub-call: instructions around the chunk (in) and its answer (out)."""
DEFAULT_CHUNK_TOKENS = 8_000


def _usd(price: tuple[float, float] | None, tokens_in: int, tokens_out: int) -> float | None:
    return None if price is None else tokens_in * price[0] + tokens_out * price[1]


def estimate(root_model: str, sub_model: str, context_chars: int) -> dict[str, Any]:
    """Rough cost before a run: one root iteration, and one full pass of the sub model over the
    context in chunks that fit its window. Unknown prices give None and are named."""
    window = context_window(sub_model)
    name = prompts.prompt_name("auto", root_model)
    opening = prompts.opening("", "", prompts.system_prompt(20_000, window, name), name)
    root_in = sum(len(m["content"]) for m in opening) // CHARS_PER_TOKEN + TYPICAL_HISTORY_TOKENS
    context_tokens = math.ceil(context_chars / CHARS_PER_TOKEN)
    chunk = min(window // 2, 100_000) if window else DEFAULT_CHUNK_TOKENS
    chunks = max(1, math.ceil(context_tokens / chunk))
    over_in, over_out = CHUNK_OVERHEAD_TOKENS
    root_usd = _usd(price_per_token(root_model), root_in, TYPICAL_ROOT_OUTPUT_TOKENS)
    sub_usd = _usd(price_per_token(sub_model), context_tokens + chunks * over_in, chunks * over_out)
    unknown = [m for m in dict.fromkeys((root_model, sub_model)) if price_per_token(m) is None]

    def money(usd: float | None) -> str:
        return "unknown" if usd is None else f"${usd:,.4f}"

    return {
        "root_model": root_model,
        "sub_model": sub_model,
        "context_chars": context_chars,
        "context_tokens": context_tokens,
        "root_tokens_per_iteration": {"in": root_in, "out": TYPICAL_ROOT_OUTPUT_TOKENS},
        "root_usd_per_iteration": root_usd,
        "sub_chunks": chunks,
        "sub_chunk_tokens": chunk,
        "sub_full_pass_usd": sub_usd,
        "unknown_prices": unknown,
        "summary": f"root: {money(root_usd)} per iteration; one pass of the sub model over the "
        f"context: {money(sub_usd)} ({chunks:,} chunks of ~{chunk:,} tokens)"
        + (f"; no price known for {', '.join(unknown)}" if unknown else ""),
    }
