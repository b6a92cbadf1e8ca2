"""Strategies side by side: the RLM, its ablations, and the baselines it is compared with, each a
runnable mode that writes a normal run tree (meta.strategy says which) through the same tracer,
store and budget. `run_strategy(name, context, question, config)` runs one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rlm_core.config import MAX_DEPTH_ALLOWED, RLMConfig
from rlm_core.engine.loop import RLMLoop
from rlm_core.engine.recorder import Recorder
from rlm_core.engine.rlm import RLM, Program, algorithm1
from rlm_core.engine.run import ModelFactory
from rlm_core.models.scripted import Policy, sub_policy
from rlm_core.otel_map import OtlpTarget
from rlm_core.store.trace_store import TraceStore
from rlm_core.strategies.algorithm2 import Algorithm2
from rlm_core.strategies.base import Baseline
from rlm_core.strategies.scripted import agent_policy, code_only_policy
from rlm_core.strategies.single import Plain, Rag
from rlm_core.strategies.summarize import Summarize
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


def rlm_without_subcalls(rec: Recorder) -> str | None:
    """The ablation: Algorithm 1 with its REPL, but every sub-call fails with a clear error (and
    the model is told so before its first turn, so it does not plan around llm_query)."""
    return RLMLoop(rec, note=NO_SUBCALLS_NOTE, subcalls=False).run()


def depth_of(name: str) -> int | None:
    if not name.startswith("rlm-depth-"):
        return None
    depth = int(name.removeprefix("rlm-depth-"))
    if not 0 <= depth <= MAX_DEPTH_ALLOWED:
        raise ValueError(f"depth must be between 0 and {MAX_DEPTH_ALLOWED}")
    return depth


def program(name: str, options: dict[str, Any]) -> tuple[Program, Policy | None]:
    """The strategy's program, and what a `demo/` root does in it (None: its own scripted root)."""
    if name in BASELINES:
        # refuses unknown options; a demo/ root reads no REPL protocol in these prompts, so it
        # answers like the scripted sub model, except the agent of Algorithm 2
        return BASELINES[name](options), agent_policy if name == "algorithm2" else sub_policy
    if options:
        raise ValueError(f"{name} takes no options (set limits in the config)")
    if name == "rlm-no-subcalls":
        return rlm_without_subcalls, code_only_policy
    return algorithm1, None


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
    models: ModelFactory | None = None,
    run_meta: dict[str, Any] | None = None,
    journal_only: bool = False,
    otlp: OtlpTarget | None = None,
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
    root, scripted_root = program(name, options)
    rlm = RLM(
        config=config,
        store=store,
        traces_dir=traces_dir,
        models=models,
        journal_only=journal_only,
        otlp=otlp,
    )
    meta = {**(run_meta or {}), "strategy": name}
    return rlm.run(
        context,
        question,
        cancel=cancel,
        run_id=run_id,
        run_meta=meta,
        program=root,
        scripted_root=scripted_root,
    )


def label(name: str) -> str:
    return LABELS.get(name, name)
