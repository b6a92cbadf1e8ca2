"""The bubblewrap command line for one REPL worker: what it may see and which namespaces it
gets. bwrap (Debian package `bubblewrap`) is preferred over unshare.py wherever it works."""

from __future__ import annotations

import os

TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Folders (or, merged into /usr, symlinks) programs need besides /usr."""
ETC = (
    "alternatives",
    "group",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "passwd",
)
"""What of /etc a Python worker and the programs it may start use; nothing else of /etc
(/etc/environment and the like can hold keys)."""
SCRATCH_BYTES = 64 * 2**20
"""The private /tmp and /dev/shm live in memory, outside RLIMIT_AS: kept small (the work folder
is on disk)."""
SCRATCH = ("/tmp", "/dev/shm")
"""In-memory folders of the sandbox's own (/dev/shm: multiprocessing's semaphores live there)."""


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _folders(path: str) -> list[str]:
    """The folders above `path` made inside the sandbox (the scratch ones exist already)."""
    args = []
    for folder in _ancestors(path):
        if folder not in SCRATCH:
            args += ["--perms", "0755", "--dir", folder]
    return args


def argv(keep: list[str], work: str, *, as_root: bool, setuid: bool) -> list[str]:
    """`keep`: folders shown read-only at the same path (the interpreter, the worker's code);
    `work`: the work folder, read-write. As root the worker keeps the two capabilities its own
    drop to a private uid needs (`setuid`) and no other."""
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--cap-drop", "ALL"]
    if as_root and setuid:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in TOP_LEVEL:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # the scratch folders first: a checkout or work folder under /tmp is mounted over them
    for scratch in SCRATCH:
        args += ["--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", scratch]
    for path in keep:
        # searchable on the way down for the worker's uid, whatever the host's folders allow
        # (/root is 0700)
        args += _folders(path)
        args += ["--ro-bind", os.path.realpath(path), path]
    args += _folders(work)
    args += ["--bind", work, work, "--chdir", work, "--remount-ro", "/"]
    return args
