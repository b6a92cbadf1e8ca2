"""How the REPL worker is confined, chosen once per process from what the machine allows, and
who it runs as.

Modes, strongest first:
- `bubblewrap`: bwrap gives the worker network, PID, IPC and mount namespaces of its own; it
  sees the interpreter, /usr, a few files of /etc, its work folder, a private /tmp and /dev/shm.
- `namespaces`: the same namespaces set up by the worker itself (unshare.py) where bwrap is
  missing; /tmp, /dev/shm, the home and the traces folder are covered, the rest stays visible.
- `seccomp`: no namespace is allowed (a container without the privilege): a plain process
  whose new sockets a seccomp filter refuses.
- `process`: a plain process (RLM_SANDBOX_ISOLATION=process, or nothing else works).
The seccomp filter is added in every mode but `process` where the kernel takes it; as root the
worker also runs as a uid of its own. RLM_SANDBOX_ISOLATION names a mode to insist on one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import py_compile
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_core.repl import bwrap, proctree

WORKER_PATH = str(Path(__file__).with_name("worker.py"))
MODES = ("bubblewrap", "namespaces", "seccomp", "process")
WORKER_UIDS = (1_900_000_000, 100_000_000)
"""When the app runs as root, each Sandbox's worker runs as a uid of its own drawn from this
range (start, size): far above real accounts, so model code can neither signal the app nor
read its /proc files, nor touch another run's worker; RLM_SANDBOX_SETUID=0 turns this off."""
FALLBACK_UID = 65534  # nobody: mapped in nearly every user namespace
PR_SET_DUMPABLE = 4
ESSENTIAL = ("/usr", "/bin", "/lib", "/etc", "/proc", "/dev")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    mode: str
    seccomp: bool

    def label(self, uid: int | None) -> str:
        """What the run node records: the mode, then `+seccomp`, then `+uid`."""
        mode = "process" if self.mode == "seccomp" else self.mode
        return "+".join([mode, *(["seccomp"] if self.seccomp else []), *(["uid"] if uid else [])])


def worker_uid() -> int | None:
    if os.geteuid() != 0 or os.environ.get("RLM_SANDBOX_SETUID") == "0":
        return None
    return WORKER_UIDS[0] + secrets.randbelow(WORKER_UIDS[1])


def own_work_dir(work_dir: str, uid: int) -> int:
    """Give the work folder to the worker's uid; returns the uid actually used (nobody when the
    user namespace the app runs in maps no such uid: chown fails with EINVAL)."""
    try:
        os.chown(work_dir, uid, uid)
    except OSError:
        uid = FALLBACK_UID
        os.chown(work_dir, uid, uid)
    return uid


def worker_env(home: str) -> dict[str, str]:
    """Everything the worker may see of the environment: no keys, no provider settings."""
    env = dict(HOME=home, TMPDIR=home, LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    return env | {"PATH": os.environ.get("PATH", os.defpath)}


def interpreter_dirs() -> list[str]:
    """Folders the worker's `python -I` reads, outermost only, /usr left out (always shown)."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    found.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    found |= {os.path.realpath(p) for p in found}
    outer = [p for p in found if not any(p != q and _under(p, q) for q in found)]
    return sorted(p for p in outer if not _under(p, "/usr"))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def closed_ancestors(path: str) -> list[str]:
    """Folders on the way to `path` that other users cannot search (/root)."""
    found, current = [], "/"
    for part in path.strip("/").split("/")[:-1]:
        current = os.path.join(current, part)
        if os.path.isdir(current) and not os.stat(current).st_mode & 0o001:
            found.append(current)
    return found


def launch(
    mode: str, work_dir: str, hide: tuple[str, ...], uid: int | None, seccomp: bool
) -> tuple[list[str], dict[str, Any]]:
    """The command prefix (bwrap, or nothing) and the worker's SETUP for one worker."""
    setup: dict[str, Any] = {"uid": uid, "seccomp": seccomp, "unshare": None}
    # RLIMIT_NPROC counts every thread of the uid on the machine, which the worker cannot see
    # from its PID namespace
    setup["nproc"] = proctree.tasks_of(os.getuid() if uid is None else uid) + 256
    keep = interpreter_dirs()
    if mode == "bubblewrap":
        shown = [*keep, os.path.dirname(WORKER_PATH)]
        return bwrap.argv(shown, work_dir, as_root=os.geteuid() == 0, setuid=uid is not None), setup
    if mode == "namespaces":
        covered = {*hide, os.path.expanduser("~")}
        if uid is not None:
            covered |= {a for path in keep for a in closed_ancestors(path)}
        covered = {p for p in covered if p != "/" and not any(_under(e, p) for e in ESSENTIAL)}
        scratch = ["/tmp", "/dev/shm"]
        setup["unshare"] = {"work": work_dir, "scratch": scratch, "hide": sorted(covered)}
        setup["unshare"]["keep"] = keep
    return [], setup


_lock = threading.Lock()
_probed: dict[str, Choice | None] = {}
WORKER_MODULES = ("wire", "tracking", "flow", "unshare", "confine", "namespace")


def _compile_worker() -> None:
    """Write the bytecode of the worker's modules where its `python -I` looks. The worker cannot
    (bubblewrap shows the folder read-only, a uid of its own may not write there) and would
    compile them at every start. Done whatever PYTHONDONTWRITEBYTECODE says: `-I` ignores it,
    so a worker that can write does the same. A read-only install keeps what it shipped."""
    folder = os.path.dirname(WORKER_PATH)
    for name in WORKER_MODULES:
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(os.path.join(folder, f"{name}.py"), doraise=True)


def choose() -> Choice:
    """The strongest mode that works here (or the one RLM_SANDBOX_ISOLATION names), probed once
    per process with a throwaway worker."""
    forced = os.environ.get("RLM_SANDBOX_ISOLATION", "auto")
    if forced not in (*MODES, "auto"):
        raise RuntimeError(f"RLM_SANDBOX_ISOLATION must be auto or one of {', '.join(MODES)}")
    with _lock:
        if not _probed:
            _compile_worker()
        for mode in MODES if forced == "auto" else (forced,):
            if mode not in _probed:
                _probed[mode] = _probe(mode)
            choice = _probed[mode]
            if choice is not None:
                return choice
    raise RuntimeError(f"RLM_SANDBOX_ISOLATION={forced}, but it does not work here (see the log)")


def _probe(mode: str) -> Choice | None:
    if mode == "process":
        return Choice(mode, False)
    if mode == "bubblewrap" and shutil.which("bwrap") is None:
        return None
    work = tempfile.mkdtemp(prefix="rlm-probe-")
    try:
        prefix, setup = launch(mode, work, (), None, True)
        argv = [*prefix, sys.executable, "-I", WORKER_PATH, "--probe", json.dumps(setup)]
        done = subprocess.run(
            argv,
            env=worker_env(work),
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        log.warning("REPL isolation %s does not work here: %s", mode, done.stderr[-2000:])
        return None
    seccomp = bool(json.loads(done.stdout.splitlines()[-1])["seccomp"])
    return None if mode == "seccomp" and not seccomp else Choice(mode, seccomp)


SAYS = {
    "bubblewrap": "bubblewrap: no network, its own PID and mount namespaces; it sees only the "
    "interpreter, /usr, its work folder and its context",
    "namespaces": "namespaces: no network, its own PID and mount namespaces; /tmp, the home and "
    "traces folders are hidden, the rest of the filesystem is visible to its user",
    "process": "a plain process: it sees the files and processes its user can see",
    "seccomp": "new sockets refused",
    "uid": "a uid of its own",
}


def describe(label: object) -> str:
    """One line on what confined a run's REPL worker, from the run node's `isolation`. Only
    our own words: an imported run's label is untrusted text, and the UI renders this."""
    parts = label.split("+") if isinstance(label, str) else []
    if not parts or any(part not in SAYS for part in parts):
        return "REPL isolation: not recorded, or recorded by another program."
    return "REPL worker: " + "; ".join(SAYS[part] for part in parts) + "."


_parent_hidden = False


def hide_parent() -> None:
    """Without root and without a PID namespace there is no second uid: make this process
    non-dumpable instead, so a worker of the same user cannot read /proc/<app pid>/environ or
    memory (where API keys live) nor ptrace it. Side effect for the whole app: no core dumps, no
    same-user debugger attach. It cannot stop a same-user worker from signalling the app."""
    global _parent_hidden
    if _parent_hidden or os.geteuid() == 0 or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
        _parent_hidden = True
