"""One REPL worker process seen from the parent: started confined (isolation.py) with a
scrubbed environment in its own session, its pipes, a reader thread that routes its frames, its
CPU time, and how it is killed.

Sub-call frames go to `on_call` (the Sandbox serves them on a pool); every other frame is
queued on `events` for the cell that waits for it. With a PID namespace (bubblewrap,
namespaces) the process started stays outside it, its one child is the namespace's pid 1 and
that one's child the worker: killing pid 1 ends every process of the worker at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rlm_core.repl import isolation, proctree, wire
from rlm_core.repl.isolation import WORKER_PATH, Choice

Event = tuple[str, dict[str, Any]]


class CallClock:
    """Total time during which at least one sub-call was outstanding."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outstanding = 0
        self._paused = 0.0
        self._since = 0.0

    def started(self) -> None:
        with self._lock:
            if self._outstanding == 0:
                self._since = time.monotonic()
            self._outstanding += 1

    def finished(self) -> None:
        with self._lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._paused += time.monotonic() - self._since

    def paused(self) -> float:
        with self._lock:
            ongoing = time.monotonic() - self._since if self._outstanding else 0.0
            return self._paused + ongoing


@dataclass(frozen=True)
class ContextRef:
    """Where the worker loads `context` from: UTF-8 text as a str, or a JSON document."""

    path: str
    kind: Literal["text", "json"]
    hide: tuple[str, ...] = ()
    """Folders the worker must not see (the traces folder); its context reaches it as an fd."""


class WorkerProcess:
    """One worker process and its pipes; frames other than sub-calls are queued on `events`."""

    def __init__(
        self,
        context: ContextRef,
        *,
        memory_mb: int,
        max_capture_chars: int,
        tmp_dir: str,
        on_call: Callable[[WorkerProcess, dict[str, Any], int], None],
        choice: Choice,
        generation: int = 1,
        uid: int | None = None,
    ) -> None:
        self.generation = generation
        """Counts restarts: a new worker numbers its calls from 1 again."""
        self.uid = uid
        """The worker's own uid when the app runs as root (None: it runs as the app's user)."""
        self.pid_namespace = choice.mode in ("bubblewrap", "namespaces")
        self.events: queue.Queue[Event] = queue.Queue()
        self.clock = CallClock()
        self.ready = False
        self._on_call = on_call
        self._send_lock = threading.Lock()
        self.log_path = os.path.join(tmp_dir, "worker.log")
        work_dir = os.path.join(tmp_dir, "work")
        prefix, setup = isolation.launch(choice.mode, work_dir, context.hide, uid, choice.seccomp)
        to_worker, self._to_fd = os.pipe()
        self._from_fd, from_worker = os.pipe()
        # opened here: the worker needs no path into the traces folder, and gets none
        context_fd = os.open(context.path, os.O_RDONLY | os.O_CLOEXEC)
        fds = (to_worker, from_worker, context_fd)
        argv = [*prefix, sys.executable, "-I", WORKER_PATH, *map(str, fds), context.kind]
        argv += [str(max_capture_chars), str(memory_mb), json.dumps(setup)]
        try:
            with open(self.log_path, "ab") as log:
                # limits are set by the worker itself: preexec_fn is unsafe in a threaded parent
                self.proc = subprocess.Popen(
                    argv,
                    pass_fds=fds,
                    start_new_session=True,
                    env=isolation.worker_env(work_dir),
                    cwd=work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        finally:
            for fd in fds:
                os.close(fd)
        self.started_at = time.monotonic()
        self.worker_pid = self.proc.pid
        """The worker itself, numbered as the app sees it: where SIGINT goes."""
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="rlm-repl-reader")
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, frame: dict[str, Any]) -> bool:
        """Write one frame; False if the worker is gone."""
        with self._send_lock:
            if self._to_fd < 0:
                return False
            try:
                wire.write_frame(self._to_fd, frame)
            except OSError:
                return False
        return True

    def interrupt(self) -> None:
        # os.kill, not Popen.send_signal: that polls and may reap, freeing the pid for reuse
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.worker_pid, signal.SIGINT)

    def cpu_seconds(self) -> float:
        """CPU time of the worker's processes so far: all their threads and what they reaped."""
        return proctree.cpu_seconds(proctree.tree(self.proc.pid))

    def kill(self) -> int:
        """Kill every process of the worker and return the worker's exit code."""
        if self.pid_namespace and not proctree.alive(self.worker_pid):
            # the worker ended by itself: pid 1 and the process outside follow with its status
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        if self.pid_namespace:
            for init in proctree.children(self.proc.pid):
                proctree.kill([init])
                proctree.wait_dead(init)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.uid is not None and not self.pid_namespace:
            proctree.kill_uid(self.uid)  # also what left the group (setsid) or was reparented
        code = self.proc.wait()
        with self._send_lock:
            if self._to_fd >= 0:
                os.close(self._to_fd)
                self._to_fd = -1
        self._reader.join(timeout=1.0)
        # A setsid'd grandchild may still hold the pipe; then the reader keeps the fd.
        if not self._reader.is_alive():
            os.close(self._from_fd)
        if self.pid_namespace and code > 128:
            code = 128 - code  # pid 1 and the process outside report a signal as 128 + it
        return code

    def kill_strays(self) -> None:
        """Kill what the worker started (forks, subprocesses) but keep the worker itself."""
        keep = {self.proc.pid, self.worker_pid}
        for _ in range(50):
            found = proctree.tree(self.proc.pid)
            if self.pid_namespace:
                keep |= set(proctree.children(self.proc.pid))  # pid 1 of the namespace
            elif self.uid is not None:
                found += proctree.processes_of(self.uid)
            else:
                found += proctree.group_of(self.proc.pid)
            strays = [pid for pid in found if pid not in keep and proctree.alive(pid)]
            if not strays:
                return
            proctree.kill(strays)
            time.sleep(0.01)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _find_worker(self) -> int:
        """The worker's pid: the process started, or two levels below it in a PID namespace
        (asked when the worker is ready, before model code could start others)."""
        pid = self.proc.pid
        for _ in range(2 if self.pid_namespace else 0):
            below = proctree.children(pid)
            if len(below) != 1:
                return self.proc.pid
            pid = below[0]
        return pid

    def _read_loop(self) -> None:
        # buffered reads come back short only at EOF; closefd=False because kill() owns the fd
        with open(self._from_fd, "rb", closefd=False) as stream:
            try:
                while (got := wire.read_frame(stream)) is not None:
                    frame, size = got
                    if frame.get("type") == "call":
                        self._on_call(self, frame, size)
                        continue
                    if frame.get("type") == "ready" and not self.ready:
                        self.worker_pid = self._find_worker()
                    self.events.put((str(frame.get("type")), frame))
                self.events.put(("eof", {}))
            except Exception as exc:  # garbage on the pipe: reported, the cell ends as a crash
                self.events.put(("bad", {"error": f"{type(exc).__name__}: {exc}"}))


def exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often: out of memory)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"code {code}"
