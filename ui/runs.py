"""Runs started from the browser: each executes in a background thread that never calls st.*.

The thread writes nodes to the shared TraceStore; pages poll the store. The registry is a
process-wide cached resource so a rerun, or another tab, finds the same live runs.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_core.config import RLMConfig
from rlm_core.engine.rlm import RLM
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import RunResult, new_id


@dataclass
class LiveRun:
    run_id: str
    thread: threading.Thread
    cancel: threading.Event = field(default_factory=threading.Event)
    result: RunResult | None = None
    crash: str | None = None
    """A message for the user when the engine itself failed (the traceback goes to the log)."""

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


class RunManager:
    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self.runs: dict[str, LiveRun] = {}
        self._lock = threading.Lock()

    def start(self, context: Any, question: str, config: RLMConfig) -> str:
        run_id = new_id()
        args = (run_id, context, question, config)
        thread = threading.Thread(target=self._run, args=args, name=f"rlm-{run_id}", daemon=True)
        with self._lock:
            self.runs[run_id] = LiveRun(run_id=run_id, thread=thread)
        thread.start()
        return run_id

    def _run(self, run_id: str, context: Any, question: str, config: RLMConfig) -> None:
        live = self.runs[run_id]
        try:
            rlm = RLM(config=config, store=self.store)
            result = live.result = rlm.run(context, question, cancel=live.cancel, run_id=run_id)
            stored = self.store.get_run(run_id) or {}
            if result.status == "error" and stored.get("status") == "running":
                live.crash = result.error  # the store could not record the end: a full disk
        except Exception as exc:  # the engine recorded it on the run node; tell the user briefly
            traceback.print_exc()
            live.crash = f"The run stopped on an internal error: {type(exc).__name__}: {exc}"

    def start_task(self, task_id: str, fn: Callable[[threading.Event], RunResult]) -> str:
        """Run `fn(cancel_event)` in the background like a run (a fork, a replay): the id is the
        caller's, since such functions choose their run's id themselves (see `result.run_id`)."""
        thread = threading.Thread(
            target=self._task, args=(task_id, fn), name=f"rlm-task-{task_id}", daemon=True
        )
        with self._lock:
            self.runs[task_id] = LiveRun(run_id=task_id, thread=thread)
        thread.start()
        return task_id

    def _task(self, task_id: str, fn: Callable[[threading.Event], RunResult]) -> None:
        live = self.runs[task_id]
        try:
            live.result = fn(live.cancel)
        except Exception as exc:
            traceback.print_exc()
            live.crash = f"It stopped on an error: {type(exc).__name__}: {exc}"

    def get(self, run_id: str) -> LiveRun | None:
        return self.runs.get(run_id)

    def stop(self, run_id: str) -> None:
        live = self.runs.get(run_id)
        if live is not None:
            live.cancel.set()

    def active(self) -> list[str]:
        return [r.run_id for r in self.runs.values() if r.running]
