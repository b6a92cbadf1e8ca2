"""Sub-calls from model code: `llm_query` and `rlm_query`, one at a time or batched.

They arrive from the sandbox on its call threads; each becomes a node under the running cell.
A child RLM is started through `start_child` (the loop), so this module needs no loop of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlm_core.context import text_of
from rlm_core.engine.budget import Ticket
from rlm_core.engine.recorder import Recorder
from rlm_core.errors import LimitExceeded, ModelError, RunCancelled, again, status_of
from rlm_core.repl.sandbox import SubCallError
from rlm_core.repl.wire import SUB_CALLS
from rlm_core.types import Node, new_id

ChildRLM = Callable[[Any, str, Node], tuple[str | None, str]]
"""Runs a child RLM over (context, question) under an rlm_query node: (answer, its run node id).
The child running out of turns ends only the child: its partial answer is the answer."""


def fallback_prompt(prompt: str, context: Any) -> str:
    """At the deepest level a child RLM would exceed max_depth: the sub model is asked instead,
    with the context the code passed in the prompt (or it would never be seen)."""
    return prompt if context is None else f"{prompt}\n\nContext:\n{text_of(context)}"


def checked(fn: str, args: dict[str, Any]) -> None:
    """The argument types each function takes; a forged call frame gets a clear error back."""
    prompts = [args.get("prompt")] if fn in ("llm_query", "rlm_query") else args.get("prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise SubCallError(f"{fn}: prompts must be strings")
    model = args.get("model")
    if fn.startswith("llm_query") and model is not None and not isinstance(model, str):
        raise SubCallError(f"{fn}: model must be a string or None")
    contexts = args.get("contexts")
    wrong = not isinstance(contexts, list) or len(contexts) != len(prompts)
    if fn == "rlm_query_batched" and contexts is not None and wrong:
        raise SubCallError(f"{fn}: contexts must be a list as long as prompts")


class SubCalls:
    """Serves one RLM's sub-calls; `allowed=False` is the ablation without sub-calls."""

    def __init__(self, rec: Recorder, start_child: ChildRLM, *, allowed: bool = True) -> None:
        self.rec, self.start_child, self.allowed = rec, start_child, allowed

    def handle(self, fn: str, args: dict[str, Any]) -> Any:
        """Serve one call from model code. What it sends and what it gets back pass through
        the run's scrubber: no key reaches a model, a trace or the code."""
        scrub = self.rec.run.scrubber
        try:
            return scrub.value(self._dispatch(fn, scrub.value(args)))
        except SubCallError as exc:
            raise SubCallError(scrub.text(str(exc))) from exc

    def _dispatch(self, fn: str, args: dict[str, Any]) -> Any:
        key = args.get("_call_id")  # the sandbox's name for this call's result, for data flow
        if not self.allowed and fn in SUB_CALLS:
            raise SubCallError(
                f"{fn} is disabled in this run (the RLM ablation without sub-calls): "
                "compute the answer with code alone"
            )
        if self.rec.code_node is None:
            # a thread the model started outlived its cell: there is no cell to hang the node on
            raise SubCallError(f"{fn} was called while no cell was running (from a thread?)")
        checked(fn, args)
        run = self.rec.run
        if run.stopped is not None:  # a limit fired: no node, no child, no call from now on
            raise again(run.stopped)
        if fn in ("llm_query", "llm_query_batched"):
            self._check_model(fn, args.get("model"))
        if fn == "llm_query":
            return self.llm_query(args["prompt"], args.get("model"), key=key)
        if fn == "llm_query_batched":
            return self._llm_batch(args["prompts"], args.get("model"), key)
        if fn == "rlm_query":
            return self.rlm_query(args["prompt"], args.get("context"), key=key)
        if fn == "rlm_query_batched":
            contexts = args.get("contexts") or [None] * len(args["prompts"])
            calls = list(zip(args["prompts"], contexts, strict=True))
            if self.rec.depth >= run.config.max_depth:  # every child would be a plain sub-call
                prompts = [fallback_prompt(p, c) for p, c in calls]
                return self._llm_batch(prompts, None, key, {"fallback_from": "rlm_query"})
            return self._batched(self.rlm_query, calls, key)
        raise SubCallError(f"unknown function {fn}")

    def _check_model(self, fn: str, model: str | None) -> None:
        """Model code may name only a model the user enabled for the run: any other name
        would send the run's key wherever that name routes (a port the code listens on)."""
        enabled = self.rec.run.models.enabled
        if model is not None and model not in enabled:
            raise SubCallError(
                f"{fn}: model {model[:80]!r} is not enabled for this run; leave model out "
                f"or name one of: {', '.join(enabled)}"
            )

    def _llm_batch(
        self,
        prompts: list[str],
        model: str | None,
        key: str | None,
        meta: dict[str, Any] | None = None,
    ) -> list[str]:
        """A batch of sub-calls: the budget for all of them is reserved before any is sent."""
        if not prompts:
            return []
        rec, batch = self.rec, new_id()
        info = {**(meta or {}), "batch": batch, "batch_size": len(prompts)}
        calls = [[{"role": "user", "content": p}] for p in prompts]
        try:
            tickets = rec.reserve("llm_query", rec.run.models.sub(model), calls, info)
        except (LimitExceeded, RunCancelled) as exc:
            rec.stop = rec.stop or exc
            raise

        def one(prompt: str, ticket: Ticket, meta: dict[str, Any], key: str | None) -> str:
            return self.llm_query(prompt, model, meta, key, ticket)

        return self._batched(one, list(zip(prompts, tickets, strict=True)), key, info)

    def _batched(
        self,
        one: Any,
        calls: list[tuple[Any, Any]],
        key: str | None,
        meta: dict[str, Any] | None = None,
    ) -> list[str]:
        """Run calls concurrently; a failed call gives its error text in its slot."""
        if not calls:
            return []
        info = meta or {"batch": new_id(), "batch_size": len(calls)}
        # A pool per batch, not per tree: children of a batched rlm_query make batches of
        # their own, and a shared pool full of waiting parents would deadlock.
        with ThreadPoolExecutor(min(len(calls), self.rec.run.config.concurrency)) as pool:
            futures = [
                pool.submit(one, a, b, {**info, "batch_index": i}, f"{key}/{i}" if key else None)
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
        ticket: Ticket | None = None,
    ) -> str:
        rec = self.rec
        messages = [{"role": "user", "content": prompt}]
        spans = rec.run.index.spans(prompt)
        try:
            text, _ = rec.ask(
                "llm_query",
                rec.run.models.sub(model),
                messages,
                spans=spans,
                meta=meta,
                key=key,
                ticket=ticket,
            )
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
            meta = {**(meta or {}), "fallback_from": "rlm_query"}
            return self.llm_query(fallback_prompt(prompt, context), None, meta, key)
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
