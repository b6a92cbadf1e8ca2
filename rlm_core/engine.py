"""The RLM loop (Algorithm 1 of the paper), readable top to bottom.

`RLM.run` sets up one run tree; `Session.run` is one recursive language model: the root
model writes code, the sandbox runs it, the truncated output goes back, until FINAL. Sub-calls
from the sandbox arrive in `Session.handle_call`; `rlm_query` starts a child Session.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlm_core import prompts
from rlm_core.insight import map_spans, pieces_of_original
from rlm_core.models import context_window
from rlm_core.parsing import TextFinal, code_blocks, text_final
from rlm_core.provenance import flatten
from rlm_core.repl.sandbox import Sandbox, SubCallError
from rlm_core.tree import Tree
from rlm_core.types import (
    CellResult,
    LimitExceeded,
    ModelError,
    Node,
    NodeKind,
    RunCancelled,
    Status,
    new_id,
)

PARTIAL_ANSWER_NAMES = ("answer", "final_answer", "result")


class Session:
    """One RLM (the root, or a child started by rlm_query) with its own REPL."""

    def __init__(self, tree: Tree, context: Any, question: str, depth: int, parent: str | None):
        self.tree, self.question, self.depth = tree, question, depth
        self.context = context
        cfg = tree.config
        self.root_model = cfg.root_model if depth == 0 else (cfg.child_root_model or cfg.sub_model)
        self.node = Node(
            node_id=tree.run_id if parent is None else new_id(),
            run_id=tree.run_id,
            parent_id=parent,
            kind="run",
            depth=depth,
            seq=0,
            model=self.root_model,
            input=question,
            meta=self._run_meta(context),
        )
        self._seq = itertools.count(1)
        self.iterations = 0
        self.code_node: Node | None = None
        self.stop: LimitExceeded | RunCancelled | None = None
        """Set when a sub-call hit a limit or was cancelled: the cell ends and so does the run."""
        self.last_response = ""
        self.last_variables: dict[str, str] = {}
        # data flow: sandbox call key -> sub-call node, and which variables each node reached
        self.call_nodes: dict[str, str] = {}
        self.sub_nodes: list[Node] = []
        self.used_by: dict[str, set[str]] = {}
        self._segments: list[tuple[int, int, int]] | None = None

    def _run_meta(self, context: Any) -> dict[str, Any]:
        cfg = self.tree.config
        self.context_ref = ref = self.tree.context_ref(context)
        return {
            "question": self.question,
            "root_model": self.root_model,
            "sub_model": cfg.sub_model,
            "config": cfg.to_public_dict(),
            "prompt": prompts.prompt_name(cfg.prompt, self.root_model),
            "context_sha": Path(ref.path).name,
            "context_kind": ref.kind,
            "context_chars": len(flatten(context)[0]),
            "context_shape": prompts.describe_context(context),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> str | None:
        """Run to FINAL and return the answer; limits and cancellation raise."""
        tree, cfg = self.tree, self.tree.config
        tree.tracer.start(self.node)
        sandbox = Sandbox(self.context_ref, self.handle_call, memory_mb=cfg.worker_memory_mb,
                          concurrency=cfg.concurrency, call_ids=True)  # fmt: skip
        try:
            return self._recorded(
                lambda: self._loop(sandbox), lambda: self._partial_answer(sandbox)
            )
        finally:
            sandbox.close()

    def _recorded(
        self, body: Callable[[], str | None], partial: Callable[[], str | None]
    ) -> str | None:
        """Run `body` and end the run node with how it went: the answer; a limit or a stop with
        the best partial answer; an error, recorded, then raised again."""
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

    def _loop(self, sandbox: Sandbox) -> str | None:
        cfg = self.tree.config
        window = context_window(cfg.sub_model)
        name = self.node.meta["prompt"]
        system = prompts.system_prompt(cfg.max_output_chars, window, name)
        messages = prompts.opening(self.context, self.question, system, name)
        small = name == prompts.SMALL_PROMPT_NAME
        sent, searched_in_vain = 0, False
        previous_blocks: list[str] = []
        for iteration in range(1, cfg.max_iterations + 1):
            self.iterations = iteration
            response = self._ask_root(messages, sent, iteration)
            sent = len(messages)
            blocks = code_blocks(response)
            if not blocks:
                tag = text_final(response)
                # A small model answers right after a search that found nothing with a made-up
                # value; that answer is refused (and recorded) so it searches again. Answers
                # naming variables or expressions come from the REPL, not from thin air.
                guess = searched_in_vain and tag is not None and tag.literal
                if tag is not None and not guess:
                    return self._text_final(sandbox, tag, iteration)
                if guess:
                    self.node.meta.setdefault("refused_guesses", []).append(iteration)
                why = prompts.GUESS_REFUSED if guess else prompts.NO_CODE_FEEDBACK
                messages += [
                    {"role": "assistant", "content": response},
                    {"role": "user", "content": self._feedback([], why)},
                ]
                continue
            views = []
            for index, code in enumerate(blocks, 1):
                result, node = self._run_cell(sandbox, code, iteration, index)
                if result.final is not None:
                    return self._final(result.final["value"], result.final.get("var"), node,
                                       self._nodes_of(result.final.get("sources", [])))  # fmt: skip
                views.append(node.model_view or "")
            shown = [prompts.cell_feedback(i, view) for i, view in enumerate(views, 1)]
            notes = []
            searched_in_vain = small and prompts.found_nothing(views)
            if searched_in_vain:
                notes.append(prompts.FOUND_NOTHING)
            if text_final(response):
                notes.append(prompts.IGNORED_TEXT_FINAL)
                self.node.meta.setdefault("ignored_text_finals", []).append(iteration)
            if blocks == previous_blocks:
                notes.append(prompts.REPEATED_CODE)  # small models loop on one cell otherwise
            previous_blocks = blocks
            messages += [
                {"role": "assistant", "content": response},
                {"role": "user", "content": self._feedback(shown, "\n".join(notes))},
            ]
            self._progress()
        # Out of turns: one last question, then the run ends as a limit with what it said.
        messages.append({"role": "user", "content": prompts.LAST_CHANCE})
        response = self._ask_root(messages, sent, cfg.max_iterations + 1)
        tag = text_final(response)
        partial = tag.value if tag and tag.value is not None else response.strip() or None
        if tag and tag.var:
            partial = self._quiet_value(sandbox, tag.var) or partial
        raise LimitExceeded("max_iterations", f"{cfg.max_iterations} iterations used", partial)

    def _feedback(self, shown: list[str], extra: str) -> str:
        return prompts.turn_feedback(shown, self.question, list(self.last_variables), extra,
                                     self.node.meta["prompt"])  # fmt: skip

    # ---- steps ---------------------------------------------------------------------------

    def _child(self, kind: NodeKind, depth: int, **fields: Any) -> Node:
        parent = self.code_node if kind in ("llm_query", "rlm_query") else self.node
        assert parent is not None
        return Node(
            node_id=new_id(),
            run_id=self.tree.run_id,
            parent_id=parent.node_id,
            kind=kind,
            depth=depth,
            seq=next(self._seq),  # count() is safe across the sandbox's call threads
            **fields,
        )

    def _ask_root(self, messages: list[dict[str, str]], sent: int, iteration: int) -> str:
        node = self._child(
            "lm",
            self.depth,
            input=json.dumps(messages[sent:], ensure_ascii=False),
            meta={"iteration": iteration, "messages_before": sent},
        )
        self.tree.tracer.start(node)
        done = self.tree.call(self.root_model, messages, node)
        self.last_response = done.text
        return done.text

    def _run_cell(
        self, sandbox: Sandbox, code: str, iteration: int, index: int
    ) -> tuple[CellResult, Node]:
        tree, cfg = self.tree, self.tree.config
        if tree.cancel.is_set():
            raise RunCancelled("stopped by the user")
        if tree.deadline and time.time() >= tree.deadline:
            raise LimitExceeded("timeout_s", f"the run took longer than {cfg.timeout_s} s")
        node = self._child(
            "code", self.depth, code=code, meta={"iteration": iteration, "block": index}
        )
        self.code_node = tree.tracer.start(node)
        try:
            result = sandbox.execute(
                code, timeout_s=cfg.cell_timeout_s, deadline=tree.deadline, cancel=tree.cancel
            )
        finally:
            self.code_node = None
        self.last_variables = result.variables
        status: Status = "error" if result.error else "ok"
        assignments = {
            k: ids for k, keys in result.assignments.items() if (ids := self._nodes_of(keys))
        }
        for name, ids in assignments.items():
            for node_id in ids:
                self.used_by.setdefault(node_id, set()).add(name)
        view = prompts.model_view(result, cfg.max_output_chars)
        tree.tracer.end(
            node,
            status,
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            model_view=view,
            context_spans=self._in_original(result.read_spans),
            meta={
                **node.meta,
                "variables": result.variables,
                "restarted": result.restarted,
                "timed_out": result.timed_out,
                "stdout_chars": result.stdout_total_chars,
                "assignments": assignments,
                "shown_spans": tree.index.spans(view) if view else [],
            },
        )
        if self.stop is not None:
            raise self.stop
        if tree.cancel.is_set():
            raise RunCancelled("stopped by the user")
        return result, node

    def _final(self, value: str, var: str | None, source: Node | None, sources: list[str]) -> str:
        node = self._child(
            "final",
            self.depth,
            output=value,
            meta={"var": var, "from_node": source.node_id if source else None, "sources": sources},
        )
        self.tree.tracer.start(node)
        self.tree.tracer.end(node, "ok")
        return value

    def _text_final(self, sandbox: Sandbox, tag: TextFinal, it: int) -> str:
        value, var = tag.value, tag.var
        if tag.expression:
            # FINAL("Code: " + code) written as text: its value is in the REPL, not the text
            result, node = self._run_cell(sandbox, f"FINAL({value})", it, 0)
            node.meta["from_text_tag"] = True
            if result.final is not None:
                sources = self._nodes_of(result.final.get("sources", []))
                return self._final(result.final["value"], None, node, sources)
        if var is None:
            # no REPL value to follow: the results the text repeats verbatim are its sources
            found = [n.node_id for n in self.sub_nodes
                     if len(out := n.output or "") >= 8 and out in (value or "")]  # fmt: skip
            return self._final(value or "", None, None, found)
        # FINAL_VAR as text still needs the variable's value: run it as a cell
        result, node = self._run_cell(sandbox, f"FINAL_VAR({var!r})", it, 0)
        node.meta["from_text_tag"] = True
        if result.final is not None:
            sources = self._nodes_of(result.final.get("sources", []))
            return self._final(result.final["value"], var, node, sources)
        missing = f"(FINAL_VAR named a variable that does not exist: {var})"
        return self._final(missing, var, node, [])

    def _quiet_value(self, sandbox: Sandbox, name: str) -> str | None:
        """A variable's value read without tracing (used only to salvage a partial answer)."""
        try:
            result = sandbox.execute(f"print({name})", timeout_s=5)
        except Exception:
            return None
        return result.stdout.strip() or None if not result.error else None

    def _partial_answer(self, sandbox: Sandbox) -> str | None:
        for name in PARTIAL_ANSWER_NAMES:
            if name in self.last_variables:
                value = self._quiet_value(sandbox, name)
                if value:
                    return value
        return self.last_response.strip() or None

    def _progress(self) -> None:
        self.node.meta["iterations"] = self.iterations
        if self.depth == 0:
            usage = self.tree.usage
            self.node.meta["llm_calls"] = usage.calls
            self.node.tokens_in, self.node.tokens_out = usage.tokens_in, usage.tokens_out
            self.node.cost_usd = usage.cost
        self.tree.tracer.start(self.node)  # rewrite the run node: the live status line reads it

    def _finish(self, status: Status, answer: str | None, error: str | None = None,
                limit: str | None = None) -> None:  # fmt: skip
        for sub in list(self.sub_nodes):  # rewritten so the store shows where each text went
            sub.meta["used_by"] = sorted(self.used_by.get(sub.node_id, ()))
            self.tree.tracer.start(sub)
        self._progress()
        self.node.meta.update(answer=answer, limit=limit)
        self.tree.tracer.end(self.node, status, output=answer, error=error)

    # ---- data flow and read positions -------------------------------------------------------

    def _nodes_of(self, keys: list[str]) -> list[str]:
        """Sub-call node ids for the sandbox's call keys (unknown keys are dropped)."""
        return [self.call_nodes[k] for k in keys if k in self.call_nodes]

    def _register(self, key: str | None, node: Node) -> None:
        self.sub_nodes.append(node)
        if key is not None:
            self.call_nodes[key] = node.node_id

    def _in_original(self, spans: list[list[int]]) -> list[list[int]]:
        """Read ranges of this RLM's context as ranges of the run's original context.

        A child's context is a piece of the original (or text around pieces of it): ranges map
        through the pieces found verbatim; reads of text that is not in the original are dropped.
        """
        if self.node.parent_id is None or not spans:
            return spans
        if self._segments is None:
            self._segments = pieces_of_original(flatten(self.context)[0], self.tree.index)
        return map_spans(spans, self._segments)

    # ---- sub-calls from the REPL (run on the sandbox's threads) -----------------------------

    def handle_call(self, fn: str, args: dict[str, Any]) -> Any:
        key = args.get("_call_id")  # the sandbox's name for this call's result, for data flow
        if self.code_node is None:
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

    def _batched(self, one: Any, calls: list[tuple[Any, Any]], key: str | None = None) -> list[str]:
        """Run calls concurrently; a failed call gives its error text in its slot."""
        if not calls:
            return []
        batch, n = new_id(), len(calls)
        # A pool per batch, not per tree: children of a batched rlm_query make batches of
        # their own, and a shared pool full of waiting parents would deadlock.
        with ThreadPoolExecutor(min(n, self.tree.config.concurrency)) as pool:
            metas = [{"batch": batch, "batch_index": i, "batch_size": n} for i in range(n)]
            keys = [f"{key}/{i}" if key else None for i in range(n)]
            futures = [pool.submit(one, a, b, metas[i], keys[i]) for i, (a, b) in enumerate(calls)]
            results = []
            for future in futures:
                try:
                    results.append(future.result())
                except SubCallError as exc:
                    results.append(f"[error: {exc}]")
        return results

    def llm_query(self, prompt: str, model: str | None, meta: dict[str, Any] | None = None,
                  key: str | None = None) -> str:  # fmt: skip
        node = self._child(
            "llm_query",
            self.depth + 1,
            input=prompt,
            context_spans=self.tree.index.spans(prompt),
            meta=meta or {},
        )
        self._register(key, node)
        self.tree.tracer.start(node)
        messages = [{"role": "user", "content": prompt}]
        try:
            return self.tree.call(model or self.tree.config.sub_model, messages, node).text
        except ModelError as exc:
            raise SubCallError(f"llm_query failed: {exc}") from exc
        except (LimitExceeded, RunCancelled) as exc:
            self.stop = self.stop or exc
            raise

    def rlm_query(self, prompt: str, context: Any, meta: dict[str, Any] | None = None,
                  key: str | None = None) -> str:  # fmt: skip
        if self.depth >= self.tree.config.max_depth:
            # at the deepest level a child RLM would exceed max_depth: ask the sub model instead
            # (the context the code passed goes along in the prompt, or it would never be seen)
            meta = {**(meta or {}), "fallback_from": "rlm_query"}
            if context is not None:
                prompt = f"{prompt}\n\nContext:\n{flatten(context)[0]}"
            return self.llm_query(prompt, None, meta, key)
        child_context = prompt if context is None else context
        node = self._child(
            "rlm_query",
            self.depth + 1,
            input=prompt,
            context_spans=self.tree.index.spans(flatten(child_context)[0]),
            meta=meta or {},
        )
        self._register(key, node)
        self.tree.tracer.start(node)
        child = Session(self.tree, child_context, prompt, self.depth + 1, node.node_id)
        try:
            answer = child.run()
        except LimitExceeded as exc:
            if exc.limit != "max_iterations":
                self.tree.tracer.end(node, "limit", error=str(exc))
                self.stop = self.stop or exc
                raise
            # the child's own turn limit ends only the child: its partial answer goes upward
            answer = exc.partial_answer
        except RunCancelled as exc:
            self.tree.tracer.end(node, "interrupted", error=str(exc))
            self.stop = self.stop or exc
            raise
        except ModelError as exc:
            self.tree.tracer.end(node, "error", error=str(exc))
            raise SubCallError(f"rlm_query failed: {exc}") from exc
        self.tree.tracer.end(
            node, "ok", output=answer, meta={**node.meta, "child_run": child.node.node_id}
        )
        return answer or ""
