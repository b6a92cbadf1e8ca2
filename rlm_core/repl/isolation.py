"""Who the REPL worker runs as, and how its processes are found and killed.

As root each worker gets a uid of its own; without root the app hides itself instead
(PR_SET_DUMPABLE). Linux /proc is read directly: no psutil.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time

WORKER_UIDS = (1_900_000_000, 100_000_000)
"""When the app runs as root, each Sandbox's worker runs as a uid of its own drawn from this
range (start, size): far above real accounts, so model code can neither signal the app nor
read its /proc files, nor touch another run's worker; RLM_SANDBOX_SETUID=0 turns this off."""
PR_SET_DUMPABLE = 4


def worker_uid() -> int | None:
    if os.geteuid() != 0 or os.environ.get("RLM_SANDBOX_SETUID") == "0":
        return None
    return WORKER_UIDS[0] + secrets.randbelow(WORKER_UIDS[1])


def processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is `uid` (from /proc/<pid>/status, which a process cannot
    hide by making itself non-dumpable); zombies are left to whoever reaps them."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uids, state = fields.get("Uid", "").split(), fields.get("State", "").strip()
        if uids and int(uids[0]) == uid and not state.startswith(("Z", "X")):
            found.append(int(name))
    return found


def group_of(pgid: int) -> list[int]:
    """Live members of a process group."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(name))
    return found


def kill_uid(uid: int, rounds: int = 50) -> None:
    """SIGKILL every process of a worker's private uid until none is left (a fork loop keeps
    making new ones for a moment; RLIMIT_NPROC bounds how many)."""
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


_parent_hidden = False


def hide_parent() -> None:
    """Without root there is no second uid: make this process non-dumpable instead, so a worker
    of the same user cannot read /proc/<app pid>/environ or memory (where API keys live) nor
    ptrace it. Side effect for the whole app: no core dumps, no same-user debugger attach.
    It cannot stop a same-user worker from signalling the app (see the README)."""
    global _parent_hidden
    if _parent_hidden or os.geteuid() == 0 or not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _parent_hidden = True
