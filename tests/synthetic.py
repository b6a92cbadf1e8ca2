"""Synthetic finished runs written straight to a store, in the shapes real runs take: turns of
lm + code, code cells fanning out to batches of sub-calls, child RLMs, data flow into variables
and FINAL, and a few failed calls. Shared by the browser tests and bench/bench_app.py, so both
measure reading and drawing only."""

from __future__ import annotations

import os
import random
import socket

from rlm_core.store.trace_store import StoreSink, TraceStore
from rlm_core.trace import Tracer
from rlm_core.types import Node, NodeKind, new_id


class _Builder:
    """Writes one run tree; times, tokens and latencies vary but repeat for a seed."""

    def __init__(self, store: TraceStore, question: str, seed: int = 0) -> None:
        self.tracer = Tracer([StoreSink(store)])
        self.run_id = new_id()
        self.rnd = random.Random(seed)
        self.question = question
        self.calls = 0
        self.turns: dict[str, int] = {}

    def run(self, parent: Node | None, depth: int, question: str) -> Node:
        meta = {
            "question": question,
            "root_model": "demo/root",
            "sub_model": "demo/sub",
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        parent_id = parent.node_id if parent else None
        node_id = self.run_id if parent is None else new_id()
        node = Node(node_id, self.run_id, parent_id, "run", depth, 0, input=question, meta=meta)
        return self.tracer.start(node)

    def lm(self, run: Node, it: int) -> None:
        node = Node(new_id(), self.run_id, run.node_id, "lm", run.depth, 2 * it, input="[]")
        node.meta = {"iteration": it}
        self.tracer.start(node)
        self.calls += 1
        self.turns[run.node_id] = it
        reply = f"turn {it}\n```repl\nanswers_{it} = llm_query_batched(chunks)\n```"
        tokens = self.rnd.randint(800, 4000)
        self.tracer.end(node, "ok", output=reply, tokens_in=tokens, tokens_out=120)

    def cell(self, run: Node, it: int) -> Node:
        node = Node(new_id(), self.run_id, run.node_id, "code", run.depth, 2 * it + 1)
        node.code, node.meta = f"answers_{it} = llm_query_batched(chunks)", {"iteration": it}
        return self.tracer.start(node)

    def sub(self, cell: Node, kind: NodeKind, batch: str, i: int, size: int) -> Node:
        meta = {"batch": batch, "batch_index": i, "batch_size": size}
        node = Node(new_id(), self.run_id, cell.node_id, kind, cell.depth + 1, i, meta=meta)
        self.calls += 1
        node.input = f"question {i} about chunk {i} of cell {cell.seq}"
        return self.tracer.start(node)

    def end_sub(self, node: Node, failed: bool) -> None:
        if failed:
            self.tracer.end(node, "error", error="RateLimitError: 429 Too Many Requests")
            return
        latency = round(self.rnd.uniform(0.3, 2.5), 3)
        tokens = self.rnd.randint(300, 1500)
        node.latency_s = latency
        self.tracer.end(
            node, "ok", output=f"answer {node.seq}", tokens_in=tokens, tokens_out=20, cost_usd=0.0
        )

    def end_cell(self, cell: Node, var: str, sources: list[str]) -> None:
        cell.meta["assignments"] = {var: sources} if sources else {}
        self.tracer.end(cell, "ok", stdout=f"{len(sources)} answers")

    def final(self, run: Node, sources: list[str]) -> None:
        node = Node(new_id(), self.run_id, run.node_id, "final", run.depth, 10**6)
        node.meta = {"var": "answer", "sources": sources}
        self.tracer.start(node)
        self.tracer.end(node, "ok", output="the answer")
        run.meta |= {"iterations": self.turns.get(run.node_id, 0), "answer": "the answer"}
        if run.parent_id is None:
            run.meta["llm_calls"] = self.calls
        self.tracer.end(run, "ok", output="the answer")

    def close(self) -> str:
        self.tracer.close()
        return self.run_id


def synthetic_run(store: TraceStore, n_nodes: int, per_cell: int = 98) -> str:
    """A finished run of about `n_nodes` nodes: turns of lm + code, each cell with a batch."""
    b = _Builder(store, f"{n_nodes} nodes?")
    root = b.run(None, 0, b.question)
    for it in range(max(1, n_nodes // (per_cell + 2))):
        b.lm(root, it)
        cell = b.cell(root, it)
        batch = new_id()
        for i in range(per_cell):
            b.end_sub(b.sub(cell, "llm_query", batch, i, per_cell), False)
        b.end_cell(cell, f"answers_{it}", [])
    b.tracer.end(root, "ok", output="done")
    return b.close()


def _turns(b: _Builder, run: Node, sizes: list[int], failing: set[int]) -> list[str]:
    """Turns of a run whose cells map llm_query over `sizes[i]` chunks; `failing` counts calls
    across the run. Returns the sub-calls whose answers were kept."""
    kept: list[str] = []
    counted = 0
    for it, size in enumerate(sizes, 1):
        b.lm(run, it)
        cell = b.cell(run, it)
        batch = new_id()
        ids = []
        for i in range(size):
            failed = counted in failing
            sub = b.sub(cell, "llm_query", batch, i, size)
            b.end_sub(sub, failed)
            counted += 1
            if not failed:
                ids.append(sub.node_id)
        b.end_cell(cell, f"answers_{it}", ids)
        kept += ids
    return kept


def wide_run(store: TraceStore, sub_calls: int = 10_000, batch: int = 2_500) -> str:
    """A root that probes the document, maps llm_query over its chunks in batches (a few calls
    fail with a rate limit), then combines: `sub_calls` sub-calls in a handful of turns."""
    b = _Builder(store, f"What do the {sub_calls:,} chunks say?", seed=1)
    root = b.run(None, 0, b.question)
    batches = [batch] * (sub_calls // batch) + [sub_calls % batch]
    failing = {sub_calls // 3, sub_calls // 3 + 7, sub_calls - 5}
    kept = _turns(b, root, [0, *(n for n in batches if n), 0], failing)
    b.final(root, kept[:50])
    return b.close()


def long_run(store: TraceStore, iterations: int = 200) -> str:
    """A root that takes `iterations` turns, one sub-call every few turns."""
    b = _Builder(store, f"{iterations} turns?", seed=2)
    root = b.run(None, 0, b.question)
    kept = _turns(b, root, [1 if it % 4 == 0 else 0 for it in range(iterations)], set())
    b.final(root, kept[-3:])
    return b.close()


def deep_run(store: TraceStore, fan: int = 6, levels: int = 3, leaves: int = 8) -> str:
    """A recursion `levels` deep: each RLM hands `fan` chunks to child RLMs (rlm_query), and
    the deepest ones map llm_query over `leaves` chunks each."""
    b = _Builder(store, "What does each part say, recursively?", seed=3)

    def rlm(parent: Node | None, depth: int) -> Node:
        run = b.run(parent, depth, b.question if parent is None else f"part at depth {depth}")
        if depth == levels:
            kept = _turns(b, run, [0, leaves], set())
        else:
            b.lm(run, 1)
            cell = b.cell(run, 1)
            batch = new_id()
            kept = []
            for i in range(fan):
                call = b.sub(cell, "rlm_query", batch, i, fan)
                child = rlm(call, depth + 1)
                call.meta["child_run"] = child.node_id
                b.end_sub(call, False)
                kept.append(call.node_id)
            b.end_cell(cell, "parts", kept)
        b.final(run, kept)
        return run

    rlm(None, 0)
    return b.close()
