"""What the REPL worker does to itself before running model code: namespaces (unshare.py, when
bubblewrap is not there), a drop to a uid of its own when the app runs as root, no capabilities
left, resource limits, a seccomp filter that refuses sockets. Stdlib only; loaded by path from
worker.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import os
import resource
import stat
import sys
import types
from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

_libc = ctypes.CDLL(None, use_errno=True)


def confine(
    setup: dict[str, Any], memory_mb: int, inherited: list[int], unshare: types.ModuleType
) -> None:
    """Everything, in order; raises when a step the parent asked for cannot be done (the parent
    probed this machine, so a failure here is a fault, not a fallback)."""
    if setup.get("unshare"):
        unshare.enter(setup["unshare"], inherited)
    if setup.get("uid") is not None:
        drop_privileges(int(setup["uid"]))
    drop_capabilities()
    apply_limits(memory_mb, int(setup["nproc"]))
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if setup.get("seccomp") and not refuse_sockets():
        raise OSError(errno.ENOSYS, "no seccomp filter for this machine")


def _ok(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def apply_limits(memory_mb: int, nproc: int) -> None:
    """Set soft and hard limits together so model code cannot raise them again. `nproc`: the
    parent counted the uid's threads on the machine (RLIMIT_NPROC counts them all) and added
    room for the worker's own."""
    wanted = [
        (resource.RLIMIT_AS, memory_mb * 2**20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_FSIZE, 512 * 2**20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, nproc),
    ]
    for which, value in wanted:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


PRELOAD = (
    "array",
    "ast",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "html",
    "html.parser",
    "inspect",
    "io",
    "itertools",
    "json",
    "math",
    "operator",
    "pathlib",
    "platform",
    "pprint",
    "queue",
    "random",
    "re",
    "secrets",
    "select",
    "shutil",
    "signal",
    "socket",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tempfile",
    "textwrap",
    "threading",
    "traceback",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "xml.etree.ElementTree",
    "zlib",
)
"""What model code commonly imports: loaded before the drop when the new uid cannot reach the
interpreter's folders (only without a mount namespace: see keep_reachable_imports)."""


def _others_can_enter(path: str) -> bool:
    """Every folder on the way can be searched by any user (ACLs aside)."""
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def keep_reachable_imports() -> None:
    """Before the drop: import what model code commonly uses if the new uid could not reach a
    sys.path folder (an interpreter under /root), then leave those folders out of sys.path.

    No directory handle is kept open for them: through /proc/self/fd/N/.. model code would
    climb past a private home to the project next to the interpreter (its .env). Bubblewrap and
    unshare.py bind the interpreter where the uid can reach it, so this applies only in the
    `seccomp` and `process` modes.
    """
    unreachable = [p for p in sys.path if p and os.path.isdir(p) and not _others_can_enter(p)]
    if not unreachable:
        return
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    sys.path[:] = [p for p in sys.path if p not in unreachable]
    sys.path_importer_cache.clear()


def drop_privileges(uid: int) -> None:
    """Become `uid` (a user of this worker alone; the parent chowned the work folder to it).

    Root model code could signal the app, read its /proc/<pid>/environ and memory (keys), and
    escape RLIMIT_NPROC. A separate uid closes all three. setuid as root sets the real, effective
    and saved ids, so it cannot be undone.
    """
    keep_reachable_imports()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # setuid made the process non-dumpable, which hides /proc/self from model code; the uid is
    # this worker's own, so nobody but root could use a dumpable worker anyway
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """Keep no capability: a worker in a user namespace of its own holds them all there (it
    could unmount what hides the traces folder), and root without a uid of its own holds them
    on the machine. A no-op after a drop to a uid of its own."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    _ok(_libc.capset(ctypes.byref(header), (_CapData * 2)()), "capset")


class _Filter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter)))


ARCHES = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}
"""machine -> (AUDIT_ARCH_*, socket, io_uring_setup) system call numbers."""
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
X32_BIT = 0x40000000


def socket_filter(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The BPF program: socket() fails with EPERM, io_uring (which could open sockets around
    the filter) too; a system call of another ABI (32-bit, x32) kills the process."""
    if machine not in ARCHES:
        return None
    audit, socket_nr, uring_nr = ARCHES[machine]
    return [
        (LD_ABS, 0, 0, 4),  # seccomp_data.arch
        (JEQ, 1, 0, audit),
        (RET, 0, 0, RET_KILL),
        (LD_ABS, 0, 0, 0),  # seccomp_data.nr
        (JGE, 3, 0, X32_BIT),
        (JEQ, 2, 0, socket_nr),
        (JEQ, 1, 0, uring_nr),
        (RET, 0, 0, RET_ALLOW),
        (RET, 0, 0, RET_ERRNO | errno.EPERM),
    ]


def refuse_sockets() -> bool:
    """Install the filter for this process and every process it starts; False where the
    architecture is not known here. The worker needs no socket: its only channel is the pipes.
    prctl filters the calling thread only: this runs before the worker starts any thread."""
    program = socket_filter(os.uname().machine)
    if program is None:
        return False
    filters = (_Filter * len(program))(*(_Filter(*op) for op in program))
    fprog = _Program(len(program), ctypes.cast(filters, ctypes.POINTER(_Filter)))
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
    return True


def probe(setup: dict[str, Any], unshare: types.ModuleType) -> dict[str, Any]:
    """What this machine allows, tried in a throwaway worker: namespaces if asked, then the
    seccomp filter (checked by opening a socket)."""
    if setup.get("unshare"):
        unshare.enter(setup["unshare"], [])
    import socket

    try:
        applied = refuse_sockets()
    except OSError:  # prctl: this kernel takes no seccomp filter
        return {"seccomp": False}
    try:
        socket.socket().close()
    except PermissionError:
        return {"seccomp": applied}
    return {"seccomp": False}
