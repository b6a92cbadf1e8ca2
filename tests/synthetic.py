"""A synthetic finished run written straight to a store, in the shape of a real one: iterations
of lm + code, each code cell with a batch of sub-calls. Shared by the browser tests and
bench/bench_app.py, so both measure reading and drawing only."""

from __future__ import annotations

import os
import socket

from rlm_core.store.trace_store import StoreSink, TraceStore
from rlm_core.trace import Tracer
from rlm_core.types import Node, new_id


def synthetic_run(store: TraceStore, n_nodes: int, per_cell: int = 98) -> str:
    """A finished run of about `n_nodes` nodes."""
    tracer = Tracer([StoreSink(store)])
    run_id = new_id()
    question = f"{n_nodes} nodes?"
    meta = {
        "question": question,
        "root_model": "demo/root",
        "sub_model": "demo/sub",
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    root = tracer.start(Node(run_id, run_id, None, "run", 0, 0, input=question, meta=meta))
    seq = 0
    for it in range(max(1, n_nodes // (per_cell + 2))):
        seq += 1
        lm = Node(new_id(), run_id, run_id, "lm", 0, seq, input="[]", meta={"iteration": it})
        tracer.end(
            tracer.start(lm),
            "ok",
            output=f"turn {it}\n```repl\nx = {it}\n```",
            tokens_in=900,
            tokens_out=80,
        )
        seq += 1
        code = Node(
            new_id(), run_id, run_id, "code", 0, seq, code=f"x = {it}", meta={"iteration": it}
        )
        tracer.start(code)
        batch = new_id()
        for i in range(per_cell):
            seq += 1
            sub = Node(
                new_id(),
                run_id,
                code.node_id,
                "llm_query",
                1,
                seq,
                input=f"question {i} about slice {it}",
                meta={"batch": batch, "batch_index": i, "batch_size": per_cell},
            )
            tracer.end(tracer.start(sub), "ok", output=f"answer {i}", tokens_in=50, tokens_out=5)
        tracer.end(code, "ok", stdout="done")
    tracer.end(root, "ok", output="done")
    tracer.close()
    return run_id
