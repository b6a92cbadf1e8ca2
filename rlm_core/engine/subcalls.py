"""Sub-calls from model code: `llm_query` and `rlm_query`, one at a time or batched.

They arrive from the sandbox on its call threads; each becomes a node under the running cell.
A child RLM is started through `start_child` (the loop), so this module needs no loop of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlm_core.context import text_of
from rlm_core.engine import fits, guesses
from rlm_core.engine.recorder import Recorder
from rlm_core.errors import LimitExceeded, ModelError, RunCancelled, status_of
from rlm_core.repl.sandbox import SubCallError
from rlm_core.repl.wire import SUB_CALLS
from rlm_core.types import Node, new_id

ChildRLM = Callable[[Any, str, Node], tuple[str | None, str]]
"""Runs a child RLM over (context, question) under an rlm_query node: (answer, its run node id).
The child running out of turns ends only the child: its partial answer is the answer."""


class SubCalls:
    """Serves one RLM's sub-calls; `allowed=False` is the ablation without sub-calls."""

    def __init__(self, rec: Recorder, start_child: ChildRLM, *, allowed: bool = True) -> None:
        self.rec, self.start_child, self.allowed = rec, start_child, allowed
        self.blind: list[str] = []
        """Sub-calls whose prompt held no text of the context (the loop tells the root)."""
        self.windows: dict[str, int | None] = {}
        """Input window per sub model, looked up once (the loop fills in the default one)."""

    def handle(self, fn: str, args: dict[str, Any]) -> Any:
        key = args.get("_call_id")  # the sandbox's name for this call's result, for data flow
        if not self.allowed and fn in SUB_CALLS:
            raise SubCallError(
                f"{fn} is disabled in this run (the RLM ablation without sub-calls): "
                "compute the answer with code alone"
            )
        if self.rec.code_node is None:
            # a thread the model started outlived its cell: there is no cell to hang the node on
            raise SubCallError(f"{fn} was called while no cell was running (from a thread?)")
        if fn == "llm_query":
            return self.llm_query(args["prompt"], args.get("model"), key=key)
        if fn == "llm_query_batched":
            calls = [(p, args.get("model")) for p in args["prompts"]]
            return self._batched(self.llm_query, calls, key)
        if fn == "rlm_query":
            return self.rlm_query(args["prompt"], args.get("context"), key=key)
        if fn == "rlm_query_batched":
            contexts = args.get("contexts") or [None] * len(args["prompts"])
            calls = list(zip(args["prompts"], contexts, strict=True))
            return self._batched(self.rlm_query, calls, key)
        raise SubCallError(f"unknown function {fn}")

    def _batched(self, one: Any, calls: list[tuple[Any, Any]], key: str | None) -> list[str]:
        """Run calls concurrently; a failed call gives its error text in its slot."""
        if not calls:
            return []
        batch, n = new_id(), len(calls)
        # A pool per batch, not per tree: children of a batched rlm_query make batches of
        # their own, and a shared pool full of waiting parents would deadlock.
        with ThreadPoolExecutor(min(n, self.rec.run.config.concurrency)) as pool:
            futures = [
                pool.submit(
                    one,
                    a,
                    b,
                    {"batch": batch, "batch_index": i, "batch_size": n},
                    f"{key}/{i}" if key else None,
                )
                for i, (a, b) in enumerate(calls)
            ]
            results = []
            for future in futures:
                try:
                    results.append(future.result())
                except SubCallError as exc:
                    results.append(f"[error: {exc}]")
        return results

    def llm_query(
        self,
        prompt: str,
        model: str | None,
        meta: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        rec = self.rec
        messages = [{"role": "user", "content": prompt}]
        spans = rec.run.index.spans(prompt)
        meta = dict(meta or {})
        # only the root's own calls: a child's context need not be a piece of the original
        if rec.depth == 0 and guesses.no_context_text(prompt, spans, rec.run.index.text):
            meta["no_context_text"] = True
        sub = rec.run.models.sub(model)
        if sub.name not in self.windows:
            self.windows[sub.name] = fits.sub_window(sub.name, rec.run.config)
        if (too_big := fits.too_big(sub.name, prompt, self.windows[sub.name])) is not None:
            node = rec.child("llm_query", input=prompt, context_spans=spans, meta=meta)
            rec.register(key, node)
            rec.run.tracer.end(node, "error", error=too_big)
            raise SubCallError(too_big)
        try:
            text, node = rec.ask("llm_query", sub, messages, spans=spans, meta=meta, key=key)
            if meta.get("no_context_text"):
                self.blind.append(node.node_id)
        except ModelError as exc:
            raise SubCallError(f"llm_query failed: {exc}") from exc
        except (LimitExceeded, RunCancelled) as exc:
            rec.stop = rec.stop or exc
            raise
        return text

    def rlm_query(
        self,
        prompt: str,
        context: Any,
        meta: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        rec = self.rec
        if rec.depth >= rec.run.config.max_depth:
            # at the deepest level a child RLM would exceed max_depth: ask the sub model instead
            # (the context the code passed goes along in the prompt, or it would never be seen)
            meta = {**(meta or {}), "fallback_from": "rlm_query"}
            if context is not None:
                prompt = f"{prompt}\n\nContext:\n{text_of(context)}"
            return self.llm_query(prompt, None, meta, key)
        child_context = prompt if context is None else context
        node = rec.child(
            "rlm_query",
            input=prompt,
            meta=meta or {},
            context_spans=rec.run.index.spans(text_of(child_context)),
        )
        rec.register(key, node)
        tracer = rec.run.tracer
        try:
            answer, child_id = self.start_child(child_context, prompt, node)
        except (LimitExceeded, RunCancelled) as exc:
            tracer.end(node, status_of(exc), error=str(exc))
            rec.stop = rec.stop or exc
            raise
        except ModelError as exc:
            tracer.end(node, "error", error=str(exc))
            raise SubCallError(f"rlm_query failed: {exc}") from exc
        tracer.end(node, "ok", output=answer, meta={**node.meta, "child_run": child_id})
        return answer or ""
