"""The REPL worker's processes as Linux /proc shows them: the tree under the process the
sandbox started, a uid's processes, their CPU time, and killing them. No psutil."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running or sleeping, not a zombie waiting to be reaped."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """Direct children of every thread of `pid` (/proc/<pid>/task/<tid>/children; a scan of
    every process's parent where the kernel lacks that file)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return [p for p in _pids() if (s := _stat(p)) is not None and int(s[1]) == pid]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants. In a PID namespace orphans go to its pid 1, which is in
    the tree; without one they go to the machine's init and leave it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children(current)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes (all their threads) and of the children they
    reaped: time moves from a process to its parent when the parent reaps it."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is `uid` (from /proc/<pid>/status, which a process cannot
    hide by making itself non-dumpable); zombies are left to whoever reaps them."""
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uids, state = fields.get("Uid", "").split(), fields.get("State", "").strip()
        if uids and int(uids[0]) == uid and not state.startswith(("Z", "X")):
            found.append(pid)
    return found


def tasks_of(uid: int) -> int:
    """Threads `uid` runs on the whole machine: RLIMIT_NPROC counts them all. Counted here,
    outside the worker's PID namespace, which would show it only its own."""
    count = 0
    for pid in _pids():
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
    return count


def group_of(pgid: int) -> list[int]:
    """Live members of a process group."""
    return [p for p in _pids() if (s := _stat(p)) is not None and int(s[2]) == pgid and alive(p)]


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_uid(uid: int, rounds: int = 50) -> None:
    """SIGKILL every process of a worker's private uid. First as that uid: its kill(-1) reaches
    every process of the uid in one pass no fork slips through (the kernel walks the task list
    under the lock fork takes), which a /proc scan cannot promise against a process that forks
    and exits every half millisecond. Then by /proc until none is left."""
    killer = shutil.which("kill", path="/usr/bin:/bin")
    if killer is not None:
        subprocess.run(
            [killer, "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=10,
        )
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            return
        kill(pids)
        time.sleep(0.01)


def wait_dead(pid: int, timeout_s: float = 5.0) -> None:
    """Until `pid` is a zombie or gone. Pid 1 of a PID namespace becomes a zombie only after
    the kernel has killed and reaped every other process of its namespace."""
    until = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < until:
        time.sleep(0.002)
