"""Recording one RLM (the root, or a child) as it happens: its run node, the nodes under it, and
how it ended. The loop and every baseline strategy record through this one piece.

It also keeps the run's data flow: which sub-call's text reached which REPL variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rlm_core.context import size_of
from rlm_core.engine import prompts
from rlm_core.engine.budget import Ticket
from rlm_core.engine.positions import Pieces, Positions
from rlm_core.engine.run import Run
from rlm_core.engine.seqs import Seqs
from rlm_core.errors import (
    DiskFull,
    LimitExceeded,
    ModelError,
    RunCancelled,
    Stop,
    again,
    status_of,
)
from rlm_core.models.model import Model
from rlm_core.repl.sandbox import Repl
from rlm_core.types import CellResult, Completion, Node, NodeKind, Status, new_id

SUB_CALL_KINDS = ("llm_query", "rlm_query")
REFUSED_PREVIEW_CHARS = 2_000


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
        pieces: Pieces | None = None,
    ) -> None:
        """A child (`parent` set) gets `pieces`: where its context sits in the original."""
        self.run, self.context, self.question, self.depth = run, context, question, depth
        self.positions = Positions(run.index, None if parent is None else pieces or [])
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
        self.output_chars = run.config.max_output_chars
        """A cell's output shown to the root is cut to this (the loop fits it to the window)."""
        self.last_response = ""
        self.last_variables: dict[str, str] = {}
        self.code_node: Node | None = None
        """The cell running now: the parent of the sub-calls its code makes."""
        self.stop: Stop | None = None
        """Set when a sub-call hit a limit or was cancelled: the cell ends and so does the run."""
        self.seqs = Seqs()
        self._node_lock = threading.RLock()
        """Held while the run node is rewritten: call threads report live totals on it."""
        if parent is None:
            run.budget.on_usage = self.progress
        # data flow: the sandbox's key of a call's result -> its node; variables each node reached
        self.call_nodes: dict[str, str] = {}
        self.sub_nodes: list[Node] = []
        self.used_by: dict[str, set[str]] = {}

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
            seq=self.seqs.next(fields.get("meta") or {}),
            **fields,
        )
        return self.run.tracer.start(node)

    def reserve(
        self,
        kind: NodeKind,
        model: Model,
        calls: list[list[dict[str, str]]],
        meta: dict[str, Any] | None = None,
    ) -> list[Ticket]:
        """Clock and budget for `calls` (a batch: all or none) before any node is written."""
        with self._refusal(kind, model, calls, meta):
            return self.run.budget.reserve(model.name, calls, self.run.clock.check)

    @contextlib.contextmanager
    def _refusal(
        self,
        kind: NodeKind,
        model: Model,
        calls: list[list[dict[str, str]]],
        meta: dict[str, Any] | None = None,
    ) -> Iterator[None]:
        """Checks that nothing stopped the run, then the body's own (a reservation). The first
        refusal of the run tree is recorded on one node (with the number of calls it refused);
        later ones write nothing."""
        run = self.run
        try:
            if run.stopped is not None:
                raise again(run.stopped)
            run.clock.check()
            yield
        except (LimitExceeded, RunCancelled) as exc:
            if run.first_stop(exc):
                meta = {**(meta or {}), **({"refused_calls": len(calls)} if len(calls) > 1 else {})}
                # the start of the first prompt only: a refused 50 MB prompt is not worth a blob
                shown = calls[0][-1]["content"][:REFUSED_PREVIEW_CHARS]
                node = self.child(kind, model=model.name, input=shown, meta=meta)
                run.tracer.end(node, status_of(exc), error=f"not called: {exc}")
            raise

    def call(
        self, node: Node, model: Model, messages: list[dict[str, str]], ticket: Ticket
    ) -> Completion:
        """One model call recorded on `node`, its answer capped at what its ticket holds (the
        caller settles the ticket)."""
        run = self.run
        node.model = model.name
        try:
            done = model.complete(
                messages,
                deadline=run.clock.deadline,
                cancel=run.clock.cancel,
                max_output_tokens=ticket.max_output_tokens,
            )
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
        ticket: Ticket | None = None,
    ) -> tuple[str, Node]:
        """One traced model call: an `lm` node (this RLM's root model, recording the messages
        added since `sent`) or an `llm_query` node (a sub-call, recording its prompt). A call of
        a batch comes with the ticket the batch reserved for it."""
        lm, batched = kind == "lm", ticket is not None
        if ticket is None:
            (ticket,) = self.reserve(kind, model, [messages], meta)
        done: Completion | None = None
        called = False
        try:  # whatever happens, the ticket goes back: calls waiting for room depend on it
            if batched:  # it waited for its turn in the batch: the run may have stopped since
                with self._refusal(kind, model, [messages], meta):
                    pass
            self.run.budget.sent()  # counted before its node: a reader never sees it uncounted
            called = True
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
            done = self.call(node, model, messages, ticket)
        finally:
            self.run.budget.settle(ticket, done, sent=called)
        if lm:
            self.last_response = done.text
        return done.text, node

    def cell(
        self, repl: Repl, code: str, iteration: int, block: int, meta: dict[str, Any] | None = None
    ) -> tuple[CellResult, Node]:
        """Run one code block in the REPL and record it: output, what the model is shown, the
        variables, the context ranges the code read, and which sub-call results it kept."""
        run, cfg = self.run, self.run.config
        run.clock.check()
        meta = {"iteration": iteration, "block": block, **(meta or {})}
        node = self.child("code", code=code, meta=meta)
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
        view = prompts.model_view(result, self.output_chars)
        positions = self.positions
        positions.cell_done(result.copied_spans)
        shown = positions.locate(view, copied=positions.copied([])).spans if view else []
        run.tracer.end(
            node,
            "error" if result.error else "ok",
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            model_view=view,
            context_spans=positions.original(result.read_spans),
            meta={
                **node.meta,
                "variables": result.variables,
                "restarted": result.restarted,
                "timed_out": result.timed_out,
                "stdout_chars": result.stdout_total_chars,
                "assignments": assignments,
                "shown_spans": shown,
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
        """Rewrite the run node with the counts so far (the root's: the whole tree's usage), so
        every reader of a running run sees its totals. The loop calls it after each turn and,
        for the root, the budget as calls finish; an ended run node is never written again."""
        with self._node_lock:
            if self.node.status != "running":
                return
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
        except (ModelError, DiskFull) as exc:
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
        with self._node_lock:  # no live rewrite between the last counts and the end
            self.progress()
            self.node.meta.update(answer=answer, limit=limit)
            self.run.tracer.end(self.node, status, output=answer, error=error)

    # ---- data flow ---------------------------------------------------------------------------

    def register(self, key: str | None, node: Node) -> None:
        """A sub-call node, and the sandbox's key for its result (to follow it into variables)."""
        self.sub_nodes.append(node)
        if key is not None:
            self.call_nodes[key] = node.node_id

    def nodes_of(self, keys: list[str]) -> list[str]:
        """Sub-call node ids for the sandbox's call keys (unknown keys are dropped)."""
        return [self.call_nodes[k] for k in keys if k in self.call_nodes]
