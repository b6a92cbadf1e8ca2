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
from rlm_core.engine.budget import Ticket
from rlm_core.engine.positions import Pieces
from rlm_core.engine.provenance import Placement
from rlm_core.engine.recorder import Recorder
from rlm_core.errors import LimitExceeded, ModelError, RunCancelled, again, status_of
from rlm_core.repl.sandbox import SubCallError
from rlm_core.repl.wire import SUB_CALLS
from rlm_core.types import Node, new_id

ChildRLM = Callable[[Any, str, Node, Pieces], tuple[str | None, str]]
"""Runs a child RLM over (context, question) under an rlm_query node, knowing where its context
sits in the original: (answer, its run node id). The child running out of turns ends only the
child: its partial answer is the answer."""
CONTEXT_HEADER = "\n\nContext:\n"
"""Between the prompt and the context of an `rlm_query` sent as one prompt at the deepest level."""


def fallback(prompt: str, context: Any, hints: Hinted) -> tuple[str, Hinted]:
    """At the deepest level a child RLM would exceed max_depth: the sub model is asked instead,
    with the context the code passed in the prompt (or it would never be seen); the hints of
    the prompt's pieces follow it there."""
    if context is None:
        return prompt, hints
    shifted = hints.appended(len(prompt) + len(CONTEXT_HEADER))
    return f"{prompt}{CONTEXT_HEADER}{text_of(context)}", shifted


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
        self.blind: list[str] = []
        """Sub-calls whose prompt held no text of the context (the loop tells the root)."""
        self.windows: dict[str, int | None] = {}
        """Input window per sub model, looked up once (the loop fills in the default one)."""

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
        # where the pieces of each text came from, per the worker (absent from other REPLs)
        sent = args.get("_from")
        froms: list[Any] = sent if isinstance(sent, list) else []
        hints = Hinted(froms, self.rec.positions.copied(args.get("_copied")))
        if fn == "llm_query":
            return self.llm_query(args["prompt"], args.get("model"), key=key, hints=hints.at(0))
        n = len(args.get("prompts") or ())
        if fn == "llm_query_batched":
            each = [hints.at(i) for i in range(n)]
            return self._llm_batch(args["prompts"], args.get("model"), key, each)
        if fn == "rlm_query":
            prompt, context = args["prompt"], args.get("context")
            return self.rlm_query(prompt, context, key=key, hints=hints.at(0, 1))
        if fn == "rlm_query_batched":
            contexts = args.get("contexts") or [None] * n
            calls = list(zip(args["prompts"], contexts, strict=True))
            # the worker lists the prompts' pieces, then the contexts'
            each = [hints.at(i, n + i) for i in range(n)]
            if self.rec.depth >= run.config.max_depth:  # every child would be a plain sub-call
                sent_as = [fallback(p, c, h) for (p, c), h in zip(calls, each, strict=True)]
                prompts, each = [p for p, _ in sent_as], [h for _, h in sent_as]
                meta = {"fallback_from": "rlm_query"}
                return self._llm_batch(prompts, None, key, each, meta)
            return self._batched(self.rlm_query, calls, key, each)
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
        hints: list[Hinted],
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

        def one(
            prompt: str, ticket: Ticket, meta: dict[str, Any], key: str | None, hints: Hinted
        ) -> str:
            return self.llm_query(prompt, model, meta, key, hints, ticket)

        return self._batched(one, list(zip(prompts, tickets, strict=True)), key, hints, info)

    def _batched(
        self,
        one: Any,
        calls: list[tuple[Any, Any]],
        key: str | None,
        hints: list[Hinted],
        meta: dict[str, Any] | None = None,
    ) -> list[str]:
        """Run calls concurrently; a failed call gives its error text in its slot."""
        if not calls:
            return []
        info = meta or {"batch": new_id(), "batch_size": len(calls)}
        self.rec.seqs.hold(info["batch"], len(calls))
        # A pool per batch, not per tree: children of a batched rlm_query make batches of
        # their own, and a shared pool full of waiting parents would deadlock.
        with ThreadPoolExecutor(min(len(calls), self.rec.run.config.concurrency)) as pool:
            futures = [
                pool.submit(
                    one,
                    a,
                    b,
                    {**info, "batch_index": i},
                    f"{key}/{i}" if key else None,
                    hints[i],
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
        hints: Hinted | None = None,
        ticket: Ticket | None = None,
    ) -> str:
        rec = self.rec
        messages = [{"role": "user", "content": prompt}]
        placed = self._placed(prompt, hints or NO_HINTS)
        meta = {**(meta or {}), **ambiguity(placed)}
        # only the root's own calls: a child's context need not be a piece of the original
        if rec.depth == 0 and guesses.no_context_text(prompt, placed.spans, rec.run.index.text):
            meta["no_context_text"] = True
        sub = rec.run.models.sub(model)
        if sub.name not in self.windows:
            self.windows[sub.name] = fits.window_of(sub.name, rec.run.config)
        if (too_big := fits.too_big(sub.name, prompt, self.windows[sub.name])) is not None:
            if ticket is not None:  # its batch held room for it: never sent, it gives it back
                rec.run.budget.settle(ticket, None, sent=False)
            node = rec.child(
                "llm_query", model=sub.name, input=prompt, context_spans=placed.spans, meta=meta
            )
            rec.register(key, node)
            rec.run.tracer.end(node, "error", error=too_big)
            raise SubCallError(too_big)
        try:
            text, node = rec.ask(
                "llm_query", sub, messages, spans=placed.spans, meta=meta, key=key, ticket=ticket
            )
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
        hints: Hinted | None = None,
    ) -> str:
        rec, hints = self.rec, hints or NO_HINTS
        if rec.depth >= rec.run.config.max_depth:
            meta = {**(meta or {}), "fallback_from": "rlm_query"}
            prompt, hints = fallback(prompt, context, hints)
            return self.llm_query(prompt, None, meta, key, hints)
        child_context = prompt if context is None else context
        placed = self._placed(text_of(child_context), hints.of_context())
        node = rec.child(
            "rlm_query",
            input=prompt,
            meta={**(meta or {}), **ambiguity(placed)},
            context_spans=placed.spans,
        )
        rec.register(key, node)
        tracer = rec.run.tracer
        try:
            answer, child_id = self.start_child(child_context, prompt, node, placed.pieces)
        except (LimitExceeded, RunCancelled) as exc:
            tracer.end(node, status_of(exc), error=str(exc))
            rec.stop = rec.stop or exc
            raise
        except ModelError as exc:
            tracer.end(node, "error", error=str(exc))
            raise SubCallError(f"rlm_query failed: {exc}") from exc
        tracer.end(node, "ok", output=answer, meta={**node.meta, "child_run": child_id})
        return answer or ""

    def _placed(self, text: str, hints: Hinted) -> Placement:
        return self.rec.positions.locate(text, hints.exact, hints.copied)


def ambiguity(placed: Placement) -> dict[str, Any]:
    """The node meta for runs of a text that occur at several places nothing told apart."""
    return {"ambiguous": placed.ambiguous} if placed.ambiguous else {}


class Hinted:
    """What the worker said about the texts of one sub-call frame: the pieces of each text
    (`froms`, in the order the worker listed them) and the copy hints of the cell."""

    def __init__(
        self, froms: list[Any], copied: list[list[list[int]]], picked: tuple[int, ...] = (0,)
    ) -> None:
        self.froms, self.copied, self.picked = froms, copied, picked

    def at(self, *positions: int) -> Hinted:
        """The hints of the texts at these positions (a prompt, then its context)."""
        return Hinted(self.froms, self.copied, positions)

    def _text(self, i: int) -> list[Any]:
        item = self.froms[i] if i < len(self.froms) else []
        return item if isinstance(item, list) else []

    @property
    def exact(self) -> list[Any]:
        return self._text(self.picked[0])

    def of_context(self) -> Hinted:
        """The hints of the context that goes with the prompt (the prompt's own when none)."""
        return Hinted(self.froms, self.copied, self.picked[-1:])

    def appended(self, shift: int) -> Hinted:
        """The prompt's pieces followed by its context's, shifted by `shift` (one prompt)."""
        context = [
            [t[0] + shift, t[1] + shift, t[2]]
            for t in self._text(self.picked[-1])
            if isinstance(t, list) and len(t) == 3 and all(type(v) is int for v in t)
        ]
        return Hinted([self._text(self.picked[0]) + context], self.copied)


NO_HINTS = Hinted([], [])
