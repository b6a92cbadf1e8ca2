"""The errors a run can end with, and the one table that says which status each one means.

Three destinations (house style): an exception in model-written code is data for the model and
never reaches here; a limit or a Stop ends the run with a status and a partial answer; anything
else is recorded on the node as `error` and raised again.
"""

from __future__ import annotations

import errno

from rlm_core.types import Status


class ModelError(Exception):
    """A model call failed in a way the user must fix (unknown model, no key, provider down)."""

    retry_errors: tuple[str, ...] = ()
    """What went wrong in the attempts that were retried before giving up."""
    out_of_time: bool = False
    """Given up because the run's deadline left no time for another try."""


class LimitExceeded(Exception):
    """A run limit was reached; the run ends with status `limit` and this limit's name."""

    def __init__(self, limit: str, detail: str = "", partial_answer: str | None = None) -> None:
        super().__init__(detail or f"limit reached: {limit}")
        self.limit = limit
        self.partial_answer = partial_answer


class RunCancelled(Exception):
    """The user stopped the run; it ends with status `interrupted`."""


class DiskFull(Exception):
    """The disk holding the traces is full: the run ends as `error` with this one message."""

    ERRNOS = (errno.ENOSPC, errno.EDQUOT)
    """The OSErrors that mean it (a full disk, a used-up quota)."""

    @classmethod
    def at(cls, where: object) -> DiskFull:
        return cls(
            f"The disk holding {where} is full: the run was stopped. Everything it finished is "
            "kept in its journal; free some space and open the traces again to see it."
        )


Stop = LimitExceeded | RunCancelled
"""What ends a run early but cleanly: a limit, or the user's Stop."""


def again(stop: Stop) -> Stop:
    """The same stop as a new exception, to raise once more in another thread."""
    if isinstance(stop, LimitExceeded):
        return LimitExceeded(stop.limit, str(stop))
    return RunCancelled(str(stop))


def status_of(exc: BaseException) -> Status:
    """The status a node or run ends with when `exc` ends it."""
    if isinstance(exc, LimitExceeded):
        return "limit"
    if isinstance(exc, RunCancelled):
        return "interrupted"
    return "error"
