"""What the REPL worker does to itself before running model code: resource limits and, when
the app runs as root, a drop to a uid of its own. Stdlib only; loaded by path from worker.py."""

from __future__ import annotations

import contextlib
import os
import resource
import sys


def _user_tasks() -> int:
    """Threads the user already runs: RLIMIT_NPROC counts them all, not just ours."""
    uid, count = os.getuid(), 0
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
    return count


def apply_limits(memory_mb: int) -> None:
    """Set soft and hard limits together so model code cannot raise them again."""
    wanted = [
        (resource.RLIMIT_AS, memory_mb * 2**20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_FSIZE, 512 * 2**20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, _user_tasks() + 256),
    ]
    for which, value in wanted:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
FALLBACK_UID = 65534  # nobody: mapped in nearly every user namespace


def _reachable_sys_path() -> None:
    """Point sys.path at directory fds opened while still root.

    The interpreter may live under a folder only root can enter (/root/.pyenv); a module
    imported after the drop is then found through /proc/self/fd/N, which needs no search
    permission on the folders above it.
    """
    entries = []
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)  # inherited by no child
            entry = f"/proc/self/fd/{fd}"
        entries.append(entry)
    sys.path[:] = entries
    sys.path_importer_cache.clear()


def drop_privileges(uid: int) -> int:
    """Become `uid` (a user of this worker alone) for good; returns the uid actually used.

    Root model code could signal the app, read its /proc/<pid>/environ and memory (keys), and
    escape RLIMIT_NPROC. A separate uid closes all three. setuid as root sets the real, effective
    and saved ids, so it cannot be undone.
    """
    import ctypes  # before the drop, like everything the drop itself needs

    libc = ctypes.CDLL(None, use_errno=True)
    _reachable_sys_path()
    try:
        os.chown(".", uid, uid)  # EINVAL when the uid is not mapped in this user namespace
    except OSError:
        uid = FALLBACK_UID
        os.chown(".", uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # setuid made the process non-dumpable, which hides /proc/self from model code; the uid is
    # this worker's own, so nobody but root could use a dumpable worker anyway
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries (su, sudo) cannot give root back
    return uid
