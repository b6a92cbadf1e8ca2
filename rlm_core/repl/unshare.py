"""Namespaces the REPL worker sets up itself when bubblewrap is missing: no network, a PID
namespace of its own (a run's processes end together) and a mount namespace in which /tmp, the
home folder and the traces folder are covered. As root directly, without root through a user
namespace.

It covers what must stay unseen instead of listing what may be seen (bubblewrap's way): the
rest of the filesystem stays visible with the worker's own permissions. Stdlib only (ctypes);
loaded by path from worker.py, like its siblings.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG = 1
SCRATCH_SIZE = "64m"
"""The private /tmp and /dev/shm live in memory, outside RLIMIT_AS: kept small (the work folder
is on disk)."""

_libc = ctypes.CDLL(None, use_errno=True)


def _ok(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(
    source: str | None, target: str | None, fstype: str | None, flags: int, data: str = ""
) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    result = _libc.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data or None))
    _ok(result, f"mount {target}")


def enter(plan: dict[str, Any], inherited: list[int]) -> None:
    """Move into new namespaces and return as the worker, pid 2 of its PID namespace.

    `plan`: "work" (bound back read-write), "scratch" (/tmp, /dev/shm: fresh tmpfs), "hide"
    (covered by an empty read-only tmpfs), "keep" (bound back read-only where a cover hides
    them: the interpreter). The calling process stays outside and pid 1 of the namespace reaps
    orphans; both exit with the worker's status (128 + signal when it was killed). `inherited`:
    the fds only the worker may hold (the pipes, the context).
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    _ok(_libc.unshare(flags | (CLONE_NEWUSER if uid else 0)), "unshare")
    if uid:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    outer = os.getpid()
    _stay_outside(inherited)
    _die_with(outer)
    _cover(plan)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _stay_as_init(inherited)


def _status(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _stay_outside(inherited: list[int]) -> None:
    """Fork pid 1 of the new PID namespace; this process waits outside for it, then exits."""
    child = os.fork()
    if child == 0:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the worker alone
    for fd in inherited:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    os._exit(_status(status))


def _die_with(outer: int) -> None:
    """Pid 1 dies with the process outside (the one the app kills); the check after prctl
    closes the window in which that process died before prctl took effect."""
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    with open("/proc/self/stat") as f:  # the old /proc still names host pids
        if int(f.read().rsplit(")", 1)[1].split()[1]) != outer:
            os._exit(1)


def _stay_as_init(inherited: list[int]) -> None:
    """Fork the worker; pid 1 reaps every process of the namespace until the worker is gone.
    When pid 1 exits, the kernel kills whatever is left in the namespace."""
    worker = os.fork()
    if worker == 0:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:
        os.close(fd)
    while True:
        pid, status = os.wait()
        if pid == worker:
            os._exit(_status(status))


def _locked_flags(path: str) -> int:
    """Flags a read-only remount must keep: in a user namespace the kernel refuses to drop
    nosuid, nodev, noexec or the atime flags of a mount that came from outside."""
    have = os.statvfs(path).f_flag
    pairs = [
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ]
    return sum(ms for st, ms in pairs if have & st)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _makedirs(path: str) -> None:
    """Create the folders a bind needs, searchable by the worker's uid whatever the umask."""
    if not os.path.isdir(path):
        _makedirs(os.path.dirname(path))
        os.mkdir(path)
        os.chmod(path, 0o755)


def _cover(plan: dict[str, Any]) -> None:
    """Cover /tmp and the hidden folders; bind back what they covered of the work folder and
    of the interpreter. The handles are opened inside the new mount namespace: the kernel binds
    only from mounts of the caller's own namespace."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the host
    work, keep = plan["work"], [p for p in plan["keep"] if os.path.isdir(p)]
    handles = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in [work, *keep]}
    scratch = plan["scratch"]
    covers = sorted({*scratch, *plan["hide"]}, key=lambda p: p.count("/"))
    for cover in covers:
        if not os.path.isdir(cover):
            continue  # absent, or under a folder covered already
        mode = "1777" if cover in scratch else "0755"
        size = SCRATCH_SIZE if cover in scratch else "1m"
        _mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")
        for path, fd in handles.items():
            if _under(path, cover) and path != cover:
                _makedirs(path)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
                if path != work:
                    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(path)
                    _mount(None, path, None, flags)
        if cover not in scratch:
            _mount(None, cover, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in handles.values():
        os.close(fd)
