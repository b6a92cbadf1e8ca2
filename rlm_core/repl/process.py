"""One REPL worker process seen from the parent: started with a scrubbed environment in its
own session, its pipes, a reader thread that routes its frames, and how it is killed.

Sub-call frames go to `on_call` (the Sandbox serves them on a pool); every other frame is
queued on `events` for the cell that waits for it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlm_core.repl import isolation, wire

WORKER_PATH = str(Path(__file__).with_name("worker.py"))
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


class WorkerProcess:
    """One worker process and its pipes; frames other than sub-calls are queued on `events`."""

    def __init__(
        self,
        context: ContextRef,
        *,
        memory_mb: int,
        max_capture_chars: int,
        tmp_dir: str,
        on_call: Callable[[WorkerProcess, dict[str, Any]], None],
        generation: int = 1,
        uid: int | None = None,
    ) -> None:
        self.generation = generation
        """Counts restarts: a new worker numbers its calls from 1 again."""
        self.uid = uid
        """The worker's own uid when the app runs as root (None: it runs as the app's user)."""
        self.events: queue.Queue[Event] = queue.Queue()
        self.clock = CallClock()
        self.ready = False
        self._on_call = on_call
        self._send_lock = threading.Lock()
        self.log_path = os.path.join(tmp_dir, "worker.log")
        work_dir = os.path.join(tmp_dir, "work")
        to_worker, self._to_fd = os.pipe()
        self._from_fd, from_worker = os.pipe()
        argv = [sys.executable, "-I", WORKER_PATH, str(to_worker), str(from_worker)]
        argv += [os.path.abspath(context.path), context.kind, str(max_capture_chars)]
        argv += [str(memory_mb), "-" if uid is None else str(uid)]
        try:
            with open(self.log_path, "ab") as log:
                # rlimits are set by the worker itself: preexec_fn is unsafe in a threaded parent
                self.proc = subprocess.Popen(
                    argv,
                    pass_fds=(to_worker, from_worker),
                    start_new_session=True,
                    env=worker_env(work_dir),
                    cwd=work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        finally:
            os.close(to_worker)
            os.close(from_worker)
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
            os.kill(self.proc.pid, signal.SIGINT)

    def kill(self) -> int:
        """Kill the whole process group (model code may have forked) and return the exit code."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.uid is not None:
            isolation.kill_uid(self.uid)  # also what left the group (setsid) or was reparented
        code = self.proc.wait()
        with self._send_lock:
            if self._to_fd >= 0:
                os.close(self._to_fd)
                self._to_fd = -1
        self._reader.join(timeout=1.0)
        # A setsid'd grandchild may still hold the pipe; then the reader keeps the fd.
        if not self._reader.is_alive():
            os.close(self._from_fd)
        return code

    def kill_strays(self) -> None:
        """Kill what the worker started (forks, subprocesses) but keep the worker itself."""
        for _ in range(50):
            found = (
                isolation.processes_of(self.uid)
                if self.uid is not None
                else isolation.group_of(self.proc.pid)
            )
            strays = [pid for pid in found if pid != self.proc.pid]
            if not strays:
                return
            for pid in strays:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _read_loop(self) -> None:
        # buffered reads come back short only at EOF; closefd=False because kill() owns the fd
        with open(self._from_fd, "rb", closefd=False) as stream:
            try:
                while (frame := wire.read_frame(stream)) is not None:
                    if frame.get("type") == "call":
                        self._on_call(self, frame)
                    else:
                        self.events.put((str(frame.get("type")), frame))
                self.events.put(("eof", {}))
            except Exception as exc:  # garbage on the pipe: reported, the cell ends as a crash
                self.events.put(("bad", {"error": f"{type(exc).__name__}: {exc}"}))


def worker_env(home: str) -> dict[str, str]:
    """Everything the worker may see of the environment: no keys, no provider settings."""
    env = dict(HOME=home, TMPDIR=home, LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    return env | {"PATH": os.environ.get("PATH", os.defpath)}


def exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often: out of memory)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"code {code}"
