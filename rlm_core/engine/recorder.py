"""Recording one RLM (the root, or a child) as it happens: its run node, the nodes under it, and
how it ended. The loop and every baseline strategy record through this one piece.

It also keeps the run's data flow: which sub-call's text reached which REPL variable.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_core.context import size_of, text_of
from rlm_core.engine import prompts
from rlm_core.engine.run import Run
from rlm_core.engine.spans import map_spans, pieces_of_original
from rlm_core.errors import LimitExceeded, ModelError, RunCancelled, Stop, status_of
from rlm_core.models.model import Model
from rlm_core.repl.sandbox import Repl
from rlm_core.types import CellResult, Completion, Node, NodeKind, Status, new_id

SUB_CALL_KINDS = ("llm_query", "rlm_query")


class Recorder:
    """The run node of one RLM and every node under it, written to the tracer as they happen."""

    def __init__(
        self,
        run: Run,
        context: Any,
        question: str,
        *,
        depth: int = 0,
        parent: str | None = None,
        prompt: str | None = None,
    ) -> None:
        self.run, self.context, self.question, self.depth = run, context, question, depth
        self.model: Model = run.models.root(depth)
        """The model that answers this RLM's root turns."""
        self.context_ref = run.context_ref(context)
        cfg = run.config
        chosen, why = (
            (prompt, "recorded")
            if prompt
            else prompts.choose_prompt(cfg.prompt, self.model.name, cfg.api_base, cfg.api_key)
        )
        self.node = Node(
            node_id=run.run_id if parent is None else new_id(),
            run_id=run.run_id,
            parent_id=parent,
            kind="run",
            depth=depth,
            seq=0,
            model=self.model.name,
            input=question,
            meta={
                "question": question,
                "root_model": self.model.name,
                "sub_model": cfg.sub_model,
                "config": cfg.to_public_dict(),
                "prompt": chosen,
                "prompt_reason": why,
                "context_sha": Path(self.context_ref.path).name,
                "context_kind": self.context_ref.kind,
                "context_chars": size_of(context),
                "context_shape": prompts.describe_context(context),
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
        )
        self.iterations = 0
        self.last_response = ""
        self.last_variables: dict[str, str] = {}
        self.code_node: Node | None = None
        """The cell running now: the parent of the sub-calls its code makes."""
        self.stop: Stop | None = None
        """Set when a sub-call hit a limit or was cancelled: the cell ends and so does the run."""
        self._seq = itertools.count(1)  # count() is safe across the sandbox's call threads
        # data flow: the sandbox's key of a call's result -> its node; variables each node reached
        self.call_nodes: dict[str, str] = {}
        self.sub_nodes: list[Node] = []
        self.used_by: dict[str, set[str]] = {}
        self._segments: list[tuple[int, int, int]] | None = None

    # ---- nodes ---------------------------------------------------------------------------

    def child(self, kind: NodeKind, **fields: Any) -> Node:
        """A new node under this RLM, written at once: sub-calls hang under the running cell."""
        parent = self.code_node if kind in SUB_CALL_KINDS and self.code_node else self.node
        node = Node(
            node_id=new_id(),
            run_id=self.run.run_id,
            parent_id=parent.node_id,
            kind=kind,
            depth=self.depth + 1 if kind in SUB_CALL_KINDS else self.depth,
            seq=next(self._seq),
            **fields,
        )
        return self.run.tracer.start(node)

    def call(self, node: Node, model: Model, messages: list[dict[str, str]]) -> Completion:
        """One model call recorded on `node`: clock and budget first, then the call, then usage."""
        run = self.run
        try:
            run.clock.check()
            run.budget.reserve_call()
        except (LimitExceeded, RunCancelled) as exc:
            run.tracer.end(node, status_of(exc), error=f"not called: {exc}")
            raise
        node.model = model.name
        try:
            done = model.complete(messages, deadline=run.clock.deadline, cancel=run.clock.cancel)
        except ModelError as exc:
            retried = list(exc.retry_errors)
            meta = {**node.meta, "retries": len(retried), "retry_errors": retried}
            stop = self._stop_behind(exc)
            run.tracer.end(
                node, "error" if stop is None else status_of(stop), error=str(exc), meta=meta
            )
            if stop is not None:
                raise stop from None
            raise
        run.budget.spent(done)
        meta = {**node.meta, "finish_reason": done.finish_reason}
        if done.replayed:
            meta["replayed"] = True
        if done.retry_errors:
            meta |= {"retries": len(done.retry_errors), "retry_errors": done.retry_errors}
        if done.cached_tokens is not None:
            meta["cached_tokens"] = done.cached_tokens
        run.tracer.end(
            node,
            "ok",
            output=done.text,
            tokens_in=done.tokens_in,
            tokens_out=done.tokens_out,
            cost_usd=done.cost_usd,
            latency_s=done.latency_s,
            meta=meta,
        )
        return done

    def _stop_behind(self, exc: ModelError) -> Stop | None:
        """A failure caused by the Stop button or the run's clock ends the run as such."""
        clock = self.run.clock
        if clock.cancel.is_set():
            return RunCancelled("stopped by the user")
        if clock.deadline and (exc.out_of_time or clock.timed_out(margin_s=1.0)):
            return LimitExceeded("timeout_s", f"the run took longer than {clock.timeout_s} s")
        return None

    def ask(
        self,
        kind: NodeKind,
        model: Model,
        messages: list[dict[str, str]],
        *,
        sent: int = 0,
        spans: list[list[int]] | None = None,
        meta: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> tuple[str, Node]:
        """One traced model call: an `lm` node (this RLM's root model, recording the messages
        added since `sent`) or an `llm_query` node (a sub-call, recording its prompt)."""
        lm = kind == "lm"
        node = self.child(
            kind,
            input=json.dumps(messages[sent:], ensure_ascii=False)
            if lm
            else messages[-1]["content"],
            context_spans=spans or [],
            meta=meta or {},
        )
        if not lm:
            self.register(key, node)
        done = self.call(node, model, messages)
        if lm:
            self.last_response = done.text
        return done.text, node

    def cell(self, repl: Repl, code: str, iteration: int, block: int) -> tuple[CellResult, Node]:
        """Run one code block in the REPL and record it: output, what the model is shown, the
        variables, the context ranges the code read, and which sub-call results it kept."""
        run, cfg = self.run, self.run.config
        run.clock.check()
        node = self.child("code", code=code, meta={"iteration": iteration, "block": block})
        self.code_node = node
        try:
            result = repl.execute(
                code,
                timeout_s=cfg.cell_timeout_s,
                deadline=run.clock.deadline,
                cancel=run.clock.cancel,
            )
        finally:
            self.code_node = None
        self.last_variables = result.variables
        assignments = {
            name: ids for name, keys in result.assignments.items() if (ids := self.nodes_of(keys))
        }
        for name, ids in assignments.items():
            for node_id in ids:
                self.used_by.setdefault(node_id, set()).add(name)
        view = prompts.model_view(result, cfg.max_output_chars)
        run.tracer.end(
            node,
            "error" if result.error else "ok",
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            model_view=view,
            context_spans=self.in_original(result.read_spans),
            meta={
                **node.meta,
                "variables": result.variables,
                "restarted": result.restarted,
                "timed_out": result.timed_out,
                "stdout_chars": result.stdout_total_chars,
                "assignments": assignments,
                "shown_spans": run.index.spans(view) if view else [],
            },
        )
        if self.stop is not None:
            raise self.stop
        run.clock.check()
        return result, node

    def final(self, value: str, var: str | None, source: Node | None, sources: list[str]) -> str:
        """The answer's node: its value, the variable it came from, the sub-calls behind it."""
        node = self.child(
            "final",
            output=value,
            meta={"var": var, "from_node": source.node_id if source else None, "sources": sources},
        )
        self.run.tracer.end(node, "ok")
        return value

    # ---- the run node ----------------------------------------------------------------------

    def progress(self) -> None:
        """Rewrite the run node with the counts so far: the live status line reads it."""
        self.node.meta["iterations"] = self.iterations
        if self.depth == 0:
            usage = self.run.budget.usage
            self.node.meta["llm_calls"] = usage.calls
            self.node.tokens_in, self.node.tokens_out = usage.tokens_in, usage.tokens_out
            self.node.cost_usd = usage.cost
        self.run.tracer.start(self.node)

    def recorded(
        self, body: Callable[[], str | None], partial: Callable[[], str | None]
    ) -> str | None:
        """Run `body` and end the run node with how it went: the answer; a limit or a stop with
        the best partial answer; an error, recorded, then raised again."""
        self.run.tracer.start(self.node)
        try:
            answer = body()
        except LimitExceeded as exc:
            exc.partial_answer = exc.partial_answer or partial()
            self._finish("limit", exc.partial_answer, error=str(exc), limit=exc.limit)
            raise
        except RunCancelled as exc:
            self._finish("interrupted", partial(), error=str(exc))
            raise
        except ModelError as exc:
            self._finish("error", None, error=str(exc))
            raise
        except BaseException:
            self._finish("error", None, error=traceback.format_exc())
            raise
        self._finish("ok", answer)
        return answer

    def _finish(
        self, status: Status, answer: str | None, error: str | None = None, limit: str | None = None
    ) -> None:
        for sub in list(self.sub_nodes):  # rewritten so the store shows where each text went
            sub.meta["used_by"] = sorted(self.used_by.get(sub.node_id, ()))
            self.run.tracer.start(sub)
        self.progress()
        self.node.meta.update(answer=answer, limit=limit)
        self.run.tracer.end(self.node, status, output=answer, error=error)

    # ---- data flow and read positions -------------------------------------------------------

    def register(self, key: str | None, node: Node) -> None:
        """A sub-call node, and the sandbox's key for its result (to follow it into variables)."""
        self.sub_nodes.append(node)
        if key is not None:
            self.call_nodes[key] = node.node_id

    def nodes_of(self, keys: list[str]) -> list[str]:
        """Sub-call node ids for the sandbox's call keys (unknown keys are dropped)."""
        return [self.call_nodes[k] for k in keys if k in self.call_nodes]

    def in_original(self, spans: list[list[int]]) -> list[list[int]]:
        """Read ranges of this RLM's context as ranges of the run's original context.

        A child's context is a piece of the original (or text around pieces of it): ranges map
        through the pieces found verbatim; reads of text that is not in the original are dropped.
        """
        if self.node.parent_id is None or not spans:
            return spans
        if self._segments is None:
            self._segments = pieces_of_original(text_of(self.context), self.run.index)
        return map_spans(spans, self._segments)
