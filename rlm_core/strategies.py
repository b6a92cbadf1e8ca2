"""Strategies side by side: the RLM, its ablations, and the baselines it is compared with, each a
runnable mode that writes a normal run tree (meta.strategy says which) through the same tracer,
store and budget. `run_strategy(name, context, question, config)` runs one."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from rlm_core.baselines.algorithm2 import Algorithm2
from rlm_core.baselines.base import Baseline
from rlm_core.baselines.single import Plain, Rag
from rlm_core.baselines.summarize import Summarize
from rlm_core.config import MAX_DEPTH_ALLOWED, RLMConfig
from rlm_core.engine import Session
from rlm_core.repl.sandbox import SUB_CALLS, SubCallError
from rlm_core.rlm import RLM, SessionType
from rlm_core.store import TraceStore
from rlm_core.tree import Model
from rlm_core.types import RunResult

STRATEGIES: dict[str, str] = {
    "rlm": "RLM (Algorithm 1): the context lives in a REPL; code and sub-calls read it",
    "plain": "Plain model: the whole context in one call, cut to the window",
    "rag": "RAG: BM25 picks the top-k chunks, then one call",
    "summarize": "Summarize until it fits, then answer (compaction)",
    "algorithm2": "Algorithm 2 scaffold: context in the window, python/llm/finish actions",
    "rlm-no-subcalls": "RLM without sub-calls: the REPL only (ablation)",
    "rlm-depth-1": "RLM, max depth 1",
    "rlm-depth-2": "RLM, max depth 2",
    "rlm-depth-3": "RLM, max depth 3",
}
LABELS = {
    "rlm": "RLM",
    "plain": "plain (cut to fit)",
    "rag": "RAG (BM25)",
    "summarize": "summarize",
    "algorithm2": "Algorithm 2",
    "rlm-no-subcalls": "RLM, no sub-calls",
    "rlm-depth-1": "RLM depth 1",
    "rlm-depth-2": "RLM depth 2",
    "rlm-depth-3": "RLM depth 3",
}
USES_SUB_MODEL = frozenset(
    {"rlm", "summarize", "algorithm2", "rlm-depth-1", "rlm-depth-2", "rlm-depth-3"}
)
BASELINES: dict[str, type[Baseline]] = {
    "plain": Plain,
    "rag": Rag,
    "summarize": Summarize,
    "algorithm2": Algorithm2,
}
NO_SUBCALLS_NOTE = """

In this run the sub-call functions (llm_query, llm_query_batched, rlm_query, \
rlm_query_batched) are disabled: calling one raises an error. Answer with code alone."""


class NoSubcallSession(Session):
    """The ablation: Algorithm 1 with its REPL, but every sub-call fails with a clear error."""

    def handle_call(self, fn: str, args: dict[str, Any]) -> Any:
        if fn in SUB_CALLS:
            raise SubCallError(
                f"{fn} is disabled in this run (the RLM ablation without sub-calls): "
                "compute the answer with code alone"
            )
        return super().handle_call(fn, args)

    def _ask_root(self, messages: list[dict[str, str]], sent: int, iteration: int) -> str:
        # the model is told before its first turn, so it does not plan around llm_query
        if messages and messages[0]["role"] == "system":
            content = messages[0]["content"]
            if NO_SUBCALLS_NOTE not in content:
                messages[0] = {"role": "system", "content": content + NO_SUBCALLS_NOTE}
        return super()._ask_root(messages, sent, iteration)


def depth_of(name: str) -> int | None:
    if not name.startswith("rlm-depth-"):
        return None
    depth = int(name.removeprefix("rlm-depth-"))
    if not 0 <= depth <= MAX_DEPTH_ALLOWED:
        raise ValueError(f"depth must be between 0 and {MAX_DEPTH_ALLOWED}")
    return depth


def _session_type(name: str, options: dict[str, Any]) -> SessionType:
    if name in BASELINES:
        baseline = BASELINES[name]
        unknown = set(options) - set(baseline.defaults)
        if unknown:
            raise ValueError(
                f"unknown options for {name}: {sorted(unknown)}; it takes "
                f"{', '.join(baseline.defaults) or 'none'}"
            )
        return functools.partial(baseline, options=options)
    if options:
        raise ValueError(f"{name} takes no options (set limits in the config)")
    if name == "rlm-no-subcalls":
        return NoSubcallSession
    return Session


def run_strategy(
    name: str,
    context: Any,
    question: str,
    config: RLMConfig,
    *,
    store: TraceStore | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
    traces_dir: str | Path | None = None,
    model: Model | None = None,
    run_meta: dict[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """Run one strategy to the end; its run tree is stored like any RLM run.

    Options: plain (window_tokens), rag (chunk_chars, top_k, window_tokens), summarize
    (part_chars, max_rounds, window_tokens), algorithm2 (window_tokens, document_share,
    compact_at_tokens). Unknown names and options raise ValueError before anything runs.
    """
    if name not in STRATEGIES and depth_of(name) is None:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    depth = depth_of(name)
    if depth is not None:
        config = config.with_(max_depth=depth)
    session_type = _session_type(name, options)
    rlm = RLM(config=config, store=store, traces_dir=traces_dir, model=model)
    meta = {**(run_meta or {}), "strategy": name}
    return rlm.run(context, question, cancel=cancel, run_id=run_id, run_meta=meta,
                   session_type=session_type)  # fmt: skip


def label(name: str) -> str:
    return LABELS.get(name, name)
