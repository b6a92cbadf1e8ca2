"""Evaluation rows as Ray tasks: a local Ray started on demand, or a cluster by address.

Workers hold no store (DuckDB has one writer): each row runs with its journal only, in a
folder of the worker's own, and comes back with that journal and its blobs; the process that
owns the store lands them as it would a journal of its own, so every row's run is stored with
its trace exactly as a local run's. Stop reaches running rows through a small actor the workers
poll (their runs end as cancelled, traces kept); rows not started yet are dropped; a row whose
worker dies is failed, the others go on. Imported only by the Ray executor (Ray is slow to load).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError, TaskCancelledError

from rlm_core.evaluate.evaluator import EvalPlan, EvalRow, Evaluator, label
from rlm_core.otel_map import OtlpTarget
from rlm_core.store.blobs import write_blob
from rlm_core.store.trace_store import TraceStore, default_traces_dir

POLL_S = 0.5
"""How often workers ask whether Stop was pressed, and the owner looks for finished rows."""
STOP_GRACE_S = 30.0
"""After Stop, how long running rows get to end as cancelled (their traces kept) before their
workers are killed."""
WORKER_ENV = ("LITELLM_LOCAL_MODEL_COST_MAP", "HF_HUB_OFFLINE")
"""Settings (never keys) the workers get from this process's environment."""


@ray.remote(num_cpus=0)
class Board:
    """What the owner and the workers of one evaluation share: Stop, and the rows running."""

    def __init__(self) -> None:
        self.stopped = False
        self.running: dict[str, int] = {}

    def stop(self) -> None:
        self.stopped = True

    def is_stopped(self) -> bool:
        return self.stopped

    def started(self, row_id: str, pid: int) -> bool:
        """Record a row as running in that process; False after Stop (it is not started)."""
        if not self.stopped:
            self.running[row_id] = pid
        return not self.stopped

    def ended(self, row_id: str) -> None:
        self.running.pop(row_id, None)

    def rows_running(self) -> dict[str, int]:
        """Row id -> process id of the worker running it."""
        return dict(self.running)


@dataclass(frozen=True)
class Landed:
    """A row answered on a worker: the row, its run's journal and the blobs the run wrote."""

    row: EvalRow
    journal: bytes | None
    blobs: list[bytes]


@ray.remote(max_retries=0)  # a row whose worker died is failed, not run twice
def answer_row(
    plan: EvalPlan,
    eval_id: str,
    row: EvalRow,
    context: Any,
    otlp: OtlpTarget | None,
    board: Any,
) -> Landed | None:
    """Run one row in this worker, with no store; None when Stop came before it started."""
    if not ray.get(board.started.remote(row.row_id, os.getpid())):
        return None
    cancel, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.wait(POLL_S):
            if ray.get(board.is_stopped.remote()):
                cancel.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="rlm-row-") as folder:
            traces = Path(folder)
            evaluator = Evaluator(
                plan,
                None,
                eval_id=eval_id,
                cancel=cancel,
                otlp=otlp,
                traces_dir=traces,
                journal_only=True,
            )
            evaluator.answer(row, context)
            journal = traces / "journal" / f"{row.run_id}.jsonl"
            blobs = [p.read_bytes() for p in (traces / "blobs").rglob("*") if p.is_file()]
            return Landed(row, journal.read_bytes() if journal.exists() else None, blobs)
    finally:
        done.set()
        board.ended.remote(row.row_id)


def reachable(address: str) -> None:
    """ValueError at once for a `host:port` nobody listens on: Ray itself retries for minutes."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ValueError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
            "`ray start --head` and give the address it prints."
        ) from exc


def start_ray(address: str | None, workers: int | None) -> None:
    """Join the Ray at `address`, or start a local one (`workers` processes, default one per
    core); nothing when this process has joined one already. Ray's own servers listen on every
    interface (Ray 2.60 has no setting to keep them on loopback); its token authentication,
    on by default, is what guards them."""
    if address:
        reachable(address)
    if ray.is_initialized():
        return
    env = {name: os.environ[name] for name in WORKER_ENV if name in os.environ}
    if address:
        try:
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            # Ray names the head by the machine's address: `127.0.0.1:6379` fails where the
            # address `ray start --head` printed works
            raise ValueError(
                f"Could not join the Ray cluster at {address}: {exc}. Give the address that "
                "`ray start --head` printed (ray start --address='...'), or `auto` on a machine "
                "of the cluster."
            ) from exc
        return
    # local workers import the engine from where this process has it
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )


class RayEvaluator(Evaluator):
    """An Evaluator whose rows run as Ray tasks; progress says rows done, running and failed."""

    def __init__(
        self,
        plan: EvalPlan,
        store: TraceStore | None,
        *,
        address: str | None = None,
        workers: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(plan, store, **options)
        self.address, self.workers = address, workers
        self.failed = 0
        self.running: dict[str, int] = {}
        """Row id -> process id of its worker, as last seen."""

    def run(self) -> list[EvalRow]:
        start_ray(self.address, self.workers)
        board = Board.remote()  # type: ignore[attr-defined]
        pending: dict[Any, EvalRow] = {}
        shared: tuple[Any, Any] = (None, None)
        try:
            for row, context in self.rows():
                if shared[0] is not context:
                    # one copy of each context in the object store, shared by its rows
                    shared = (context, ray.put(context))
                ref = answer_row.remote(self.plan, self.eval_id, row, shared[1], self.otlp, board)
                pending[ref] = row
            rows = self._collect(pending, board)
        finally:
            ray.kill(board)
        self.on_progress(self.count, self.plan.total, "stopped" if self.cancel.is_set() else "done")
        return sorted(rows, key=lambda r: r.row_id)  # the plan's order

    def _collect(self, pending: dict[Any, EvalRow], board: Any) -> list[EvalRow]:
        rows: list[EvalRow] = []
        kill_at: float | None = None
        while pending:
            if self.cancel.is_set() and kill_at is None:
                board.stop.remote()
                kill_at = time.monotonic() + STOP_GRACE_S
            if kill_at is not None and time.monotonic() > kill_at:
                for ref in pending:
                    ray.cancel(ref, force=True)
                kill_at = float("inf")  # once
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            for ref in ready:
                row = self._land(ref, pending.pop(ref))
                if row is not None:
                    rows.append(row)
            self.running = ray.get(board.rows_running.remote())
            self.on_progress(
                self.count,
                self.plan.total,
                f"{len(self.running)} running · {self.failed} failed"
                + (f" · last: {label(rows[-1])}" if rows else ""),
            )
        return rows

    def _land(self, ref: Any, row: EvalRow) -> EvalRow | None:
        """The row's answer and trace into the store; a failed row when its worker died."""
        try:
            landed: Landed | None = ray.get(ref)
        except TaskCancelledError:
            if not self.cancel.is_set():
                raise
            row.status, row.error = "interrupted", "stopped; its worker was killed"
        except RayError as exc:  # the worker died (or Ray lost it): this row only
            row.status, row.error = "error", f"the Ray worker running it died: {exc}"[:500]
        else:
            if landed is None:
                return None  # Stop came before it started
            row = landed.row
            self._write_trace(landed)
        if row.status == "error":
            self.failed += 1
        self._save(row)
        return row

    def _write_trace(self, landed: Landed) -> None:
        if self.store is not None:
            traces = self.store.dir
        else:  # the store is busy: the journal waits there for the app to import it
            traces = self.traces_dir or default_traces_dir()
        for data in landed.blobs:
            write_blob(traces / "blobs", data)
        if landed.journal is None or landed.row.run_id is None:
            return
        journal = traces / "journal" / f"{landed.row.run_id}.jsonl"
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_bytes(landed.journal)
        if self.store is not None:
            self.store.import_journals()
