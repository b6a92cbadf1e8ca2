"""`RLM`: the public entry point. It wires one run tree (store, journal, model client) and runs
the root Session; everything it returns is plain data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_core.config import RLMConfig
from rlm_core.engine import Session
from rlm_core.models import LiteLLMClient
from rlm_core.provenance import ContextIndex
from rlm_core.store import StoreBusy, StoreSink, TraceStore, default_traces_dir
from rlm_core.trace import JournalSink, Tracer, TraceSink
from rlm_core.tree import Model, Tree
from rlm_core.types import LimitExceeded, ModelError, RunCancelled, RunResult, new_id

SessionType = Callable[[Tree, Any, str, int, str | None], Session]
"""Builds the root of a run tree: `Session` (Algorithm 1) or a baseline from strategies.py."""


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
        model: Model | None = None,
        **limits: Any,
    ) -> None:
        given = dict(root_model=root_model, sub_model=sub_model, api_base=api_base,
                     api_key=api_key, **limits)  # fmt: skip
        self.config = (config or RLMConfig()).with_(
            **{k: v for k, v in given.items() if v is not None}
        )
        self.store = store
        self.traces_dir = Path(traces_dir) if traces_dir else (store.dir if store else None)
        self.model = model
        self.trace_note: str | None = None

    def run(
        self,
        context: Any,
        query: str,
        *,
        cancel: threading.Event | None = None,
        run_id: str | None = None,
        run_meta: dict[str, Any] | None = None,
        session_type: SessionType = Session,
    ) -> RunResult:
        """Run to the end; `run_meta` goes on the root run node (e.g. where a fork came from).
        `session_type` swaps the loop for another strategy on the same store, budget and tracer."""
        cfg = self.config
        run_id = run_id or new_id()
        traces_dir = self.traces_dir or default_traces_dir()
        store, own_store = self.store, False
        if store is None:
            try:
                store, own_store = TraceStore(traces_dir), True
            except StoreBusy as exc:
                self.trace_note = f"{exc} The trace was written to the journal; the app imports it."
        sinks: list[TraceSink] = [JournalSink(traces_dir / "journal" / f"{run_id}.jsonl", run_id)]
        if store is not None:
            sinks.append(StoreSink(store))
        model = self.model or LiteLLMClient(
            api_base=cfg.api_base, api_key=cfg.api_key, retries=cfg.retries,
            timeout_s=cfg.request_timeout_s, temperature=cfg.temperature,
        )  # fmt: skip
        tree = Tree(
            config=cfg,
            model=model,
            tracer=Tracer(sinks),
            run_id=run_id,
            blob_dir=traces_dir / "blobs",
            index=ContextIndex(context),
            cancel=cancel or threading.Event(),
        )
        session = session_type(tree, context, query, 0, None)
        session.node.meta.update(run_meta or {})
        result = RunResult(run_id=run_id, answer=None, status="running")
        try:
            result.answer, result.status = session.run(), "ok"
        except LimitExceeded as exc:
            result.answer, result.status, result.limit = exc.partial_answer, "limit", exc.limit
            result.error = str(exc)
        except RunCancelled as exc:
            result.answer, result.status, result.error = (
                session.node.output,
                "interrupted",
                str(exc),
            )
        except ModelError as exc:
            result.status, result.error = "error", str(exc)
        finally:
            tree.tracer.close()
            if store is not None:
                store.mark_journal_synced(run_id)
                if own_store:
                    store.close()
        result.iterations = session.iterations
        result.llm_calls = tree.usage.calls
        result.tokens_in, result.tokens_out = tree.usage.tokens_in, tree.usage.tokens_out
        result.cost_usd = tree.usage.cost
        result.wall_s = time.time() - tree.started
        return result
