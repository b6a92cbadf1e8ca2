"""Work started from the browser that outlives a script run (runs, forks, strategies side by side,
evaluations): each job runs in a background thread that never calls st.*.

A job is cancelled through its Event and ends with a result, or with a one-line crash message for
the user while the traceback goes to the server log. The runner is one process-wide cached
resource, so a rerun, or another tab, finds the same jobs; pages poll them from a fragment.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import streamlit as st

T = TypeVar("T")


@dataclass
class Job(Generic[T]):
    job_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    result: T | None = None
    crash: str | None = None
    """A message for the user when the work raised (the traceback goes to the log)."""
    progress: tuple[int, int, str] | None = None
    """(done, total, what now), as the work last reported it through `report`."""

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def report(self, done: int, total: int, label: str) -> None:
        self.progress = (done, total, label)


class JobRunner:
    def __init__(self) -> None:
        self.jobs: dict[str, Job[Any]] = {}
        self._lock = threading.Lock()

    def start(self, job_id: str, work: Callable[[Job[T]], T], *, what: str) -> Job[T]:
        """Run `work(job)` in a thread. `what` names the work in the crash message ("The run").
        The id is the caller's: runs use their run id, so a page finds the job of a run."""
        job: Job[T] = Job(job_id)
        job.thread = threading.Thread(
            target=self._run, args=(job, work, what), name=f"job-{job_id}", daemon=True
        )
        with self._lock:
            self.jobs[job_id] = job
        job.thread.start()
        return job

    @staticmethod
    def _run(job: Job[T], work: Callable[[Job[T]], T], what: str) -> None:
        try:
            job.result = work(job)
        except Exception as exc:  # one line for the user, the traceback for the server log
            traceback.print_exc()
            job.crash = f"{what} stopped on an internal error: {type(exc).__name__}: {exc}"

    def get(self, job_id: str) -> Job[Any] | None:
        return self.jobs.get(job_id)

    def stop(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.cancel.set()

    def active(self) -> list[str]:
        with self._lock:
            return [j.job_id for j in self.jobs.values() if j.running]


@st.cache_resource
def jobs() -> JobRunner:
    """The runner of this server process."""
    return JobRunner()
