"""`RLM`: the public entry point. It wires one run tree (store, journal, models, REPLs) and runs
a program at its root — Algorithm 1 by default — and everything it returns is plain data."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

from rlm_core.config import RLMConfig
from rlm_core.engine import scripted
from rlm_core.engine.budget import Budget, check_cost_limit
from rlm_core.engine.loop import RLMLoop
from rlm_core.engine.recorder import Recorder
from rlm_core.engine.run import Clock, ModelFactory, Models, Run
from rlm_core.engine.spans import ContextIndex
from rlm_core.errors import DiskFull, LimitExceeded, ModelError, RunCancelled, status_of
from rlm_core.models.model import Model, Role
from rlm_core.models.resolve import model_for
from rlm_core.models.scripted import Policy, ScriptedModel, is_demo
from rlm_core.otel_map import OtlpTarget
from rlm_core.repl import isolation
from rlm_core.repl.sandbox import ReplFactory, Sandbox
from rlm_core.secrets import Scrubber
from rlm_core.store.journal import JournalSink
from rlm_core.store.trace_store import StoreBusy, StoreSink, TraceStore, default_traces_dir
from rlm_core.trace import Tracer, TraceSink
from rlm_core.types import RunResult, new_id, valid_id


class Program(Protocol):
    """What runs at the root of a run tree: Algorithm 1, or a strategy it is compared with. It
    records through the root's Recorder and returns the answer (limits and Stop raise)."""

    def __call__(self, rec: Recorder) -> str | None: ...


def algorithm1(rec: Recorder) -> str | None:
    return RLMLoop(rec).run()


def default_models(config: RLMConfig, scripted_root: Policy | None = None) -> ModelFactory:
    """Models by name: a `demo/` root runs a scripted root policy (the program's own, else the
    one its name stands for); everything else is resolved by `models.resolve`."""

    def make(name: str, role: Role) -> Model:
        if is_demo(name) and role == "root":
            return ScriptedModel(name, scripted_root or scripted.root_policy(name))
        return model_for(
            name,
            api_base=config.api_base,
            api_key=config.api_key,
            retries=config.retries,
            timeout_s=config.request_timeout_s,
            temperature=config.temperature,
            seed=config.seed,
        )

    return make


def sandbox_repl(config: RLMConfig) -> ReplFactory:
    # what confines the worker is probed here, once per process, before a run opens its journal
    # (a run then never shows a journal that stops before its run node) and fails early when the
    # isolation RLM_SANDBOX_ISOLATION insists on is not there
    isolation.choose()

    def make(context: Any, handler: Any) -> Sandbox:
        return Sandbox(
            context,
            handler,
            memory_mb=config.worker_memory_mb,
            concurrency=config.concurrency,
            call_ids=True,
        )

    return make


class RLM:
    """A configured recursive language model: `RLM(root_model=..., sub_model=...).run(ctx, q)`."""

    def __init__(
        self,
        root_model: str | None = None,
        sub_model: str | None = None,
        api_base: str | None = None,
        *,
        api_key: str | None = None,
        config: RLMConfig | None = None,
        store: TraceStore | None = None,
        traces_dir: str | Path | None = None,
        models: ModelFactory | None = None,
        repl: ReplFactory | None = None,
        journal_only: bool = False,
        otlp: OtlpTarget | None = None,
        **limits: Any,
    ) -> None:
        """`models` and `repl` replace how models and REPLs are made (replay, tests).
        `journal_only`: open no store, write the journal only (an evaluation worker, whose
        journal the store's owner imports). `otlp`: also send every node, as it ends, to that
        OTLP collector."""
        given = dict(
            root_model=root_model, sub_model=sub_model, api_base=api_base, api_key=api_key, **limits
        )
        self.config = (config or RLMConfig()).with_(
            **{k: v for k, v in given.items() if v is not None}
        )
        self.store = store
        self.traces_dir = Path(traces_dir) if traces_dir else (store.dir if store else None)
        self.models = models
        self.repl = repl
        self.journal_only = journal_only
        self.otlp = otlp
        self.trace_note: str | None = None

    def run(
        self,
        context: Any,
        query: str,
        *,
        cancel: threading.Event | None = None,
        run_id: str | None = None,
        run_meta: dict[str, Any] | None = None,
        program: Program = algorithm1,
        scripted_root: Policy | None = None,
    ) -> RunResult:
        """Run to the end. `run_meta` goes on the root run node (e.g. where a fork came from);
        `program` swaps Algorithm 1 for another strategy on the same store, budget and tracer,
        and `scripted_root` is that strategy's stand-in for a `demo/` root model."""
        cfg = self.config
        check_cost_limit(cfg)  # before anything is written: such a run could not keep its limit
        repl = self.repl or sandbox_repl(cfg)
        run_id = run_id or new_id()
        if not valid_id(run_id):
            raise ValueError(f"not a run id: {run_id[:80]!r}")  # it names the journal file
        traces_dir = self.traces_dir or default_traces_dir()
        store, own_store = self.store, False
        if store is None and not self.journal_only:
            try:
                store, own_store = TraceStore(traces_dir), True
            except StoreBusy as exc:
                self.trace_note = f"{exc} The trace was written to the journal; the app imports it."
            except DiskFull as exc:
                return RunResult(run_id=run_id, answer=None, status="error", error=str(exc))
        models = Models(cfg, self.models or default_models(cfg, scripted_root))
        try:
            return self._run_tree(
                context, query, run_id, traces_dir, store, models, repl, cancel, run_meta, program
            )
        except DiskFull as exc:  # the run could not start: its journal or context not written
            return RunResult(run_id=run_id, answer=None, status="error", error=str(exc))
        finally:
            if own_store and store is not None:
                store.close()

    def _run_tree(
        self,
        context: Any,
        query: str,
        run_id: str,
        traces_dir: Path,
        store: TraceStore | None,
        models: Models,
        repl: ReplFactory,
        cancel: threading.Event | None,
        run_meta: dict[str, Any] | None,
        program: Program,
    ) -> RunResult:
        cfg = self.config
        # a key in the document or the question would otherwise reach the blobs and the trace
        scrubber = Scrubber.for_run(cfg.api_key)
        context, query = scrubber.value(context), scrubber.text(query)
        sinks: list[TraceSink] = [JournalSink(traces_dir / "journal" / f"{run_id}.jsonl", run_id)]
        if store is not None:
            sinks.append(StoreSink(store, run_id))
        otlp = None
        if self.otlp is not None:
            from rlm_core.otlp import OtlpSink  # the OpenTelemetry SDK, imported when used

            otlp = OtlpSink(self.otlp, run_id)
            sinks.append(otlp)
        run = Run(
            config=cfg,
            models=models,
            tracer=Tracer(sinks, scrubber),
            run_id=run_id,
            blob_dir=traces_dir / "blobs",
            index=ContextIndex(context),
            clock=Clock(cfg.timeout_s, cancel or threading.Event()),
            budget=Budget(cfg),
            repl=repl,
            scrubber=scrubber,
            output_chars=(run_meta or {}).get("output_chars"),
        )
        result = RunResult(run_id=run_id, answer=None, status="running")
        rec: Recorder | None = None
        try:
            rec = Recorder(run, context, query)
            rec.node.meta.update(run_meta or {})
            result.answer, result.status = program(rec), "ok"
        except (LimitExceeded, RunCancelled, ModelError, DiskFull) as exc:
            result.status, result.error = status_of(exc), str(exc)
            if isinstance(exc, LimitExceeded):
                result.answer, result.limit = exc.partial_answer, exc.limit
            elif isinstance(exc, RunCancelled) and rec is not None:
                result.answer = rec.node.output
        finally:
            # Sub-calls and child RLMs still in flight (from threads of model code) were cut
            # short: no call of theirs starts from now on, and their nodes end as cancelled.
            run.first_stop(RunCancelled("the run had already ended"))
            run.tracer.cancel_running("cut short: the run ended before this finished")
            if otlp is not None and rec is not None:
                # the run node once more, with what the collector confirmed (its span is out)
                rec.node.meta["otlp"] = otlp.settle()
                run.tracer.start(rec.node)
            run.tracer.close()
            if store is not None and run.tracer.failed is None:
                # after a refused write the journal may hold a line the tables do not: it is
                # left to the next import
                store.mark_journal_synced(run_id)
        result.answer = None if result.answer is None else scrubber.text(result.answer)
        result.error = None if result.error is None else scrubber.text(result.error)
        usage = run.budget.usage
        result.iterations, result.llm_calls = rec.iterations if rec else 0, usage.calls
        result.tokens_in, result.tokens_out = usage.tokens_in, usage.tokens_out
        result.cost_usd = usage.cost
        result.wall_s = run.clock.elapsed()
        return result
