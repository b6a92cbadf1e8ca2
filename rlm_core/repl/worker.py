"""REPL worker process: runs model-written cells in one persistent namespace.

Stdlib only; process.py starts it (inside bubblewrap when there is one) as
`python -I worker.py IN_FD OUT_FD CONTEXT_FD KIND CAP MEM_MB SETUP` (SETUP: JSON, how to
confine itself: confine.py), or as `worker.py --probe SETUP` to learn what the machine allows.
Frames on both pipes are a 4-byte big-endian length then JSON; the parent serves sub-calls.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import sys
import threading
import types
from typing import TYPE_CHECKING, Any


def _sibling(name: str) -> types.ModuleType:
    """Load a stdlib-only module next to this file: `python -I` keeps this folder off sys.path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_rlm_worker_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from rlm_core.repl import compose, confine, flow, namespace, patterns, tracking, unshare, wire
else:
    wire = _sibling("wire")
    tracking = _sibling("tracking")
    patterns = _sibling("patterns")
    compose = _sibling("compose")
    flow = _sibling("flow")
    unshare = _sibling("unshare")
    confine = _sibling("confine")
    namespace = _sibling("namespace")


class SubCallAborted(BaseException):
    """The parent refused a sub-call because a run limit was reached or the run was cancelled."""


class InterruptGate:
    """Turns SIGINT into KeyboardInterrupt only while a cell runs, never halfway through a frame."""

    def __init__(self) -> None:
        self.armed = False
        self.shield = 0
        self.pending = False

    def handler(self, signum: int, frame: Any) -> None:
        if not self.armed:
            return
        if self.shield:
            self.pending = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.shield += 1

    def __exit__(self, *exc: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.shield -= 1
        if not self.shield and self.pending and self.armed:
            self.pending = False
            raise KeyboardInterrupt


class Channel:
    """Length-prefixed JSON frames over the two pipes shared with the parent."""

    def __init__(self, in_fd: int, out_fd: int, gate: InterruptGate) -> None:
        self._in = os.fdopen(in_fd, "rb")
        self._out = out_fd
        self._lock = threading.Lock()
        self._gate = gate

    def send(self, frame: dict[str, Any] | bytes) -> None:
        # A KeyboardInterrupt between two writes would leave the parent a torn frame.
        with self._gate, self._lock:
            wire.write_frame(self._out, frame)

    def recv(self) -> dict[str, Any] | None:
        got = wire.read_frame(self._in)
        return None if got is None else got[0]


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] = {}


class SubCalls:
    """Client side of llm_query & co.: one request frame per call, answered by id."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting: dict[int, _Slot] = {}
        self.abort: str | None = None
        self.flow = flow.Flow()

    def call(self, fn: str, args: dict[str, Any]) -> Any:
        if self.abort is not None:
            raise SubCallAborted(self.abort)
        slot = _Slot()
        with self._lock:
            self._next_id += 1
            call_id = self._next_id
            self._waiting[call_id] = slot
        try:
            frame = {"type": "call", "id": call_id, "fn": fn, "args": args}
            try:
                data = wire.encode(frame)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{fn}: arguments must be JSON-serialisable: {exc}") from None
            refused = wire.call_refused(fn, args, len(data))
            if refused:
                raise ValueError(refused)
            self._channel.send(data)
            slot.done.wait()
        finally:
            with self._lock:
                self._waiting.pop(call_id, None)
        reply = slot.reply
        if reply.get("ok"):
            self.flow.received(call_id, reply.get("value"), args)
            return reply.get("value")
        if reply.get("abort"):
            self.abort = str(reply["abort"])
            raise SubCallAborted(self.abort)
        raise RuntimeError(str(reply.get("error", "sub-call failed")))

    def on_reply(self, frame: dict[str, Any]) -> None:
        with self._lock:
            slot = self._waiting.get(frame.get("id", -1))
        if slot is not None:
            slot.reply = frame
            slot.done.set()


def read_context(fd: int, kind: str) -> Any:
    """From the fd the parent opened: the worker needs no path into the traces folder."""
    # newline="" keeps "\r\n" intact so character offsets match the original file
    with open(fd, encoding="utf-8", newline=None if kind == "json" else "") as f:
        return json.load(f) if kind == "json" else f.read()


def read_loop(channel: Channel, calls: SubCalls, cells: queue.Queue[dict[str, Any]]) -> None:
    try:
        while (frame := channel.recv()) is not None:
            if frame.get("type") == "reply":
                calls.on_reply(frame)
            elif frame.get("type") == "exec":
                cells.put(frame)
    finally:
        # The parent is gone or spoke garbage: nothing useful is left to do.
        os._exit(0)


def main(argv: list[str]) -> int:
    if argv[0] == "--probe":
        print(json.dumps(confine.probe(json.loads(argv[1]), unshare)), flush=True)
        return 0
    in_fd, out_fd, context_fd, kind, cap, memory_mb, setup = argv
    fds = [int(in_fd), int(out_fd), int(context_fd)]
    for fd in fds:
        os.set_inheritable(fd, False)
    gate = InterruptGate()
    signal.signal(signal.SIGINT, gate.handler)
    channel = Channel(int(in_fd), int(out_fd), gate)
    try:
        confine.confine(json.loads(setup), int(memory_mb), fds, unshare)
        reads = tracking.Reads()
        raw = read_context(int(context_fd), kind)
        context = tracking.track(raw, reads)
        patterns.patch_modules(tracking.TrackedStr)
    except BaseException as exc:
        channel.send({"type": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    calls = SubCalls(channel)
    calls.flow.set_document(raw)
    prov = namespace.Provenance(
        reads=reads,
        rewrite=compose.rewrite,
        builders=compose.builders(tracking.compose, tracking.TrackedStr),
        segments=tracking.segments,
    )
    session = namespace.Session(context, calls, gate, int(cap), prov)
    cells: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=read_loop, args=(channel, calls, cells), daemon=True).start()
    channel.send({"type": "ready"})
    while True:
        frame = cells.get()
        try:
            done = session.run_cell(str(frame.get("code", "")))
            channel.send(done | {"cell": frame.get("cell")})
        except MemoryError:
            channel.send({"type": "done", "cell": frame.get("cell"), "error": "MemoryError\n"})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
