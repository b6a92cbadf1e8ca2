"""Parent side of the REPL sandbox: one worker process per Sandbox; sub-calls served on a pool.

The worker is confined as far as the machine allows (isolation.py: bubblewrap, namespaces,
seccomp, a uid of its own), with a scrubbed env, a private cwd and rlimits; it is not a VM.
Messages are length-prefixed JSON, never pickle; sub-calls are size-checked before they are served.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from rlm_core.errors import LimitExceeded, RunCancelled
from rlm_core.repl import isolation
from rlm_core.repl.process import ContextRef, WorkerProcess, exit_text
from rlm_core.repl.wire import SUB_CALLS, call_refused
from rlm_core.types import CellResult

CallHandler = Callable[[str, dict[str, Any]], Any]
INTERRUPT_GRACE_S = 2.0
POLL_S = 0.05
START_TIMEOUT_S = 300.0
"""A worker not ready by then (loading a huge context takes seconds, not minutes) is stuck:
its start fails loudly instead of the cell waiting for ever."""
RESTARTED = "the REPL was restarted, all variables are lost; `context` is available again."
MAX_LISTED = 10_000
"""Items of one list or dict taken from a "done" frame (variables, read ranges, call keys): the
worker sends fewer; a forged frame must not have the parent journal more."""


class SubCallError(Exception):
    """Raised by a handler for a failure model code should see: it becomes RuntimeError(msg)."""


def _stop_message(
    reason: str, outcome: str, limit: float, elapsed: float, error: str | None
) -> str:
    if reason == "cancel":
        return "cancelled"
    why = (
        f"The cell ran past {limit:g} s"
        if reason == "timeout"
        else "The run's time limit was reached"
    )
    if outcome == "not run":
        return f"{why}; the cell did not run."
    if outcome == "killed":
        return f"{why} and the cell was stopped; {RESTARTED}"
    detail = f"\n{error}" if error else ""
    return f"{why}: it was interrupted after {elapsed:.1f} s; variables so far are kept.{detail}"


def _call_keys(value: Any, generation: int) -> list[str]:
    """The worker's result keys ("7", "7/2") made unique across restarts ("1.7", "1.7/2")."""
    items = value[:MAX_LISTED] if isinstance(value, list) else []
    return [f"{generation}.{k}" for k in items if isinstance(k, str)]


def spans(value: Any) -> list[list[int]]:
    """[start, end) pairs from untrusted JSON; anything else is dropped."""
    items = value[:MAX_LISTED] if isinstance(value, list) else []
    return [
        [a, b]
        for a, b in (s for s in items if isinstance(s, list) and len(s) == 2)
        if isinstance(a, int) and isinstance(b, int) and 0 <= a < b
    ]


def _cell_result(frame: dict[str, Any], generation: int = 1, cap: int = 10**6) -> CellResult:
    """Build a CellResult from a worker's "done" frame, trusting none of its types and sizes:
    model code can forge one, with 100 MB of "output" for the parent to journal."""

    def text(key: str) -> str:
        value = frame.get(key)
        if not isinstance(value, str):
            return ""
        if len(value) <= cap + 100:  # the worker keeps `cap` chars, then adds a short marker
            return value
        return value[:cap] + f"\n... [+{len(value) - cap:,} more chars not captured]\n"

    final = frame.get("final")
    if isinstance(final, dict) and isinstance(final.get("value"), str):
        var = final.get("var")
        sources = _call_keys(final.get("sources"), generation)
        final = {"value": final["value"], "var": var if isinstance(var, str) else None}
        if sources:  # sub-call results the answer holds; absent when there are none
            final["sources"] = sources
    else:
        final = None
    assignments = frame.get("assignments")
    assignments = list(assignments.items())[:MAX_LISTED] if isinstance(assignments, dict) else []
    variables = frame.get("variables")
    variables = list(variables.items())[:MAX_LISTED] if isinstance(variables, dict) else []
    total = frame.get("stdout_total")
    return CellResult(
        stdout=text("stdout"),
        stderr=text("stderr"),
        error=text("error") or None,
        final=final,
        variables={str(k)[:200]: str(v)[:200] for k, v in variables},
        stdout_total_chars=total if isinstance(total, int) else len(text("stdout")),
        read_spans=spans(frame.get("reads")),
        copied_spans=spans(frame.get("copies")),
        assignments={str(name)[:200]: _call_keys(keys, generation) for name, keys in assignments},
    )


class Repl(Protocol):
    """A persistent Python namespace that runs cells: the Sandbox, or a test's in-process fake."""

    def execute(
        self,
        code: str,
        *,
        timeout_s: float,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> CellResult: ...

    def close(self) -> None: ...

    @property
    def isolation(self) -> str:
        """What confines model code (the run node's `isolation`): see isolation.describe."""
        ...


ReplFactory = Callable[[ContextRef, CallHandler], Repl]
"""Makes the REPL of one RLM: its context and the handler of its sub-calls."""


class Sandbox:
    """A persistent Python REPL in a separate, restartable worker process."""

    def __init__(
        self,
        context: ContextRef,
        handler: CallHandler,
        *,
        memory_mb: int | None = None,
        max_capture_chars: int = 1_000_000,
        concurrency: int = 16,
        call_ids: bool = False,
    ) -> None:
        """`call_ids`: the handler's args get "_call_id", the key CellResult.assignments and
        final["sources"] use for that call's result (batched: "<key>/<position>")."""
        self._context = context
        self._handler = handler
        self._call_ids = call_ids
        self._generations = itertools.count(1)
        if memory_mb is None:
            memory_mb = 4 * os.path.getsize(context.path) // 2**20 + 1024
        self._memory_mb = memory_mb
        self._max_capture_chars = max_capture_chars
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rlm-subcall")
        self._choice = isolation.choose()
        self._tmp_dir = tempfile.mkdtemp(prefix="rlm-repl-")
        os.mkdir(os.path.join(self._tmp_dir, "work"))
        self._uid = isolation.worker_uid()
        if self._uid is not None:
            self._uid = isolation.own_work_dir(self.work_dir, self._uid)
            # the worker (another uid) must pass through to its work dir
            os.chmod(self._tmp_dir, 0o711)
        elif self._choice.mode in ("seccomp", "process"):
            isolation.hide_parent()  # a PID namespace hides the app already
        self._cell_ids = itertools.count(1)
        self._handler_error: BaseException | None = None
        self._exec_lock = threading.Lock()
        self._closed = False
        self._worker = self._spawn()

    @property
    def pid(self) -> int:
        """Process id (and process group id) of the current worker."""
        return self._worker.pid

    @property
    def work_dir(self) -> str:
        return os.path.join(self._tmp_dir, "work")

    @property
    def isolation(self) -> str:
        """What confines model code, e.g. `bubblewrap+seccomp+uid` (isolation.describe)."""
        return self._choice.label(self._uid)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(
        self,
        code: str,
        *,
        timeout_s: float,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> CellResult:
        """Run one cell; model errors, timeouts and crashes come back as data in the result."""
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        with self._exec_lock:
            result = self._run_cell(code, timeout_s, deadline, cancel)
            error, self._handler_error = self._handler_error, None
        if error is not None:
            raise error  # a bug in the handler, not in model code: fail loudly
        return result

    def close(self) -> None:
        """Kill the worker's process group and remove the temp dir; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._worker.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess(
            self._context,
            memory_mb=self._memory_mb,
            max_capture_chars=self._max_capture_chars,
            tmp_dir=self._tmp_dir,
            on_call=self._on_call,
            choice=self._choice,
            generation=next(self._generations),
            uid=self._uid,
        )

    def _run_cell(
        self, code: str, timeout_s: float, deadline: float | None, cancel: threading.Event | None
    ) -> CellResult:
        worker = self._worker
        cell_id = next(self._cell_ids)
        exec_frame = {"type": "exec", "cell": cell_id, "code": code}
        sent = worker.ready and worker.send(exec_frame)
        started, paused_at_start = time.monotonic(), worker.clock.paused()
        cpu_at_start = worker.cpu_seconds()
        while True:
            # Compute time: the CPU time of the worker's processes, so that threads computing
            # while a slow sub-call is open count; and wall time not spent waiting for models,
            # so that a cell that blocks or sleeps ends too.
            waited = worker.clock.paused() - paused_at_start
            elapsed = max(time.monotonic() - started - waited, worker.cpu_seconds() - cpu_at_start)
            if cancel is not None and cancel.is_set():
                return self._stop(worker, cell_id, sent, "cancel", elapsed, timeout_s)
            if deadline is not None and time.time() >= deadline:
                return self._stop(worker, cell_id, sent, "deadline", elapsed, timeout_s)
            if sent and elapsed >= timeout_s:
                return self._stop(worker, cell_id, sent, "timeout", elapsed, timeout_s)
            try:
                kind, frame = worker.events.get(timeout=POLL_S)
            except queue.Empty:
                if not worker.ready and time.monotonic() - worker.started_at > START_TIMEOUT_S:
                    log = worker.log_tail()
                    self._restart()
                    raise RuntimeError(
                        f"the REPL worker did not start in {START_TIMEOUT_S:g} s: {log}"
                    ) from None
                continue
            if kind == "ready":
                worker.ready = True
                sent = worker.send(exec_frame)
                # loading the context is not the cell's time
                started, paused_at_start = time.monotonic(), worker.clock.paused()
                cpu_at_start = worker.cpu_seconds()
            elif kind == "done" and frame.get("cell") == cell_id:
                return _cell_result(frame, worker.generation, self._max_capture_chars)
            elif kind == "fatal":
                raise RuntimeError(f"the REPL worker could not start: {frame['error']}")
            elif kind in ("eof", "bad"):
                return self._crashed(worker, sent, frame.get("error"))

    def _stop(
        self,
        worker: WorkerProcess,
        cell_id: int,
        sent: bool,
        reason: str,
        elapsed: float,
        limit: float,
    ) -> CellResult:
        """Interrupt the cell with SIGINT; if it will not stop, kill and restart the worker."""
        frame = None
        if sent:
            worker.interrupt()
            frame = self._await_done(worker, cell_id, INTERRUPT_GRACE_S)
            if frame is None:
                self._restart()
            else:
                # SIGINT reached the worker only: a fork loop or a child process would go on
                worker.kill_strays()
        result = (
            CellResult(restarted=sent)
            if frame is None
            else _cell_result(frame, worker.generation, self._max_capture_chars)
        )
        result.timed_out = reason != "cancel"
        outcome = "interrupted" if frame is not None else "killed" if sent else "not run"
        result.error = _stop_message(reason, outcome, limit, elapsed, result.error)
        return result

    def _await_done(
        self, worker: WorkerProcess, cell_id: int, wait_s: float
    ) -> dict[str, Any] | None:
        until = time.monotonic() + wait_s
        while (left := until - time.monotonic()) > 0:
            try:
                kind, frame = worker.events.get(timeout=left)
            except queue.Empty:
                return None
            if kind == "done" and frame.get("cell") == cell_id:
                return frame
            if kind in ("eof", "bad"):
                return None
        return None

    def _crashed(self, worker: WorkerProcess, sent: bool, problem: str | None) -> CellResult:
        code = self._restart()
        if not sent:
            raise RuntimeError(
                f"the REPL worker failed to start ({exit_text(code)}): {worker.log_tail()}"
            )
        # after a malformed message the exit code is our own SIGKILL: not worth reporting
        what = f"exited ({exit_text(code)})"
        if problem:
            what = f"sent a malformed message ({problem})"
        return CellResult(
            restarted=True,
            error=f"The REPL process {what} while running this cell; {RESTARTED}",
        )

    def _restart(self) -> int:
        code = self._worker.kill()
        self._worker = self._spawn()
        return code

    def _on_call(self, worker: WorkerProcess, frame: dict[str, Any], size: int) -> None:
        """Runs on a worker's reader thread: hand the call to the pool so calls overlap. A call
        too large is refused here, before the handler could write any of it."""
        fn, args, call_id = frame.get("fn"), frame.get("args"), frame.get("id")
        if fn not in SUB_CALLS or not isinstance(args, dict) or self._closed:
            worker.send({"type": "reply", "id": call_id, "ok": False, "error": f"bad call {fn!r}"})
            return
        refused = call_refused(str(fn), args, size)
        if refused:
            worker.send({"type": "reply", "id": call_id, "ok": False, "error": refused})
            return
        worker.clock.started()
        try:
            self._pool.submit(self._serve, worker, call_id, str(fn), args)
        except RuntimeError:  # the pool was shut down by close() meanwhile
            worker.clock.finished()

    def _serve(self, worker: WorkerProcess, call_id: Any, fn: str, args: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"type": "reply", "id": call_id}
        if self._call_ids:
            args = args | {"_call_id": f"{worker.generation}.{call_id}"}
        try:
            value = self._handler(fn, args)
            json.dumps(value)  # fail here, in the parent, if the handler returned non-JSON
            reply |= {"ok": True, "value": value}
        except SubCallError as exc:
            reply |= {"ok": False, "error": str(exc)}
        except (LimitExceeded, RunCancelled) as exc:
            detail = f": {exc}" if str(exc) else ""
            reply |= {"ok": False, "abort": f"{type(exc).__name__}{detail}"}
        except Exception as exc:
            if self._handler_error is None:
                self._handler_error = exc
            reply |= {"ok": False, "abort": f"internal error in {fn}: {type(exc).__name__}"}
        try:
            worker.send(reply)
        finally:
            worker.clock.finished()
