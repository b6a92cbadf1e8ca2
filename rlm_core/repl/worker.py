"""REPL worker process: runs model-written cells in one persistent namespace.

Stdlib only; sandbox.py starts it as
`python -I worker.py IN_FD OUT_FD CONTEXT KIND CAP MEM_MB [UID|-]` (UID: drop root to it).
Frames on both pipes are a 4-byte big-endian length then JSON; the parent serves sub-calls.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib.util
import json
import linecache
import os
import queue
import signal
import struct
import sys
import threading
import traceback
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
    from rlm_core.repl import confine, tracking
else:
    tracking = _sibling("tracking")
    confine = _sibling("confine")

SUB_CALLS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched")
RESERVED = ("context", *SUB_CALLS, "SHOW_VARS", "FINAL", "FINAL_VAR")
MAX_FRAME = 512 * 2**20
EMERGENCY_RESERVE = 8 * 2**20


class FinalAnswer(BaseException):
    """Raised by FINAL / FINAL_VAR; a BaseException so model `except Exception` can't swallow it."""


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

    def send(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame).encode()
        # A KeyboardInterrupt between two writes would leave the parent a torn frame.
        with self._gate, self._lock:
            view = memoryview(struct.pack(">I", len(data)) + data)
            while view:
                view = view[os.write(self._out, view) :]

    def recv(self) -> dict[str, Any] | None:
        head = self._in.read(4)
        if len(head) < 4:
            return None
        (size,) = struct.unpack(">I", head)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes is too large")
        body = self._in.read(size)
        if len(body) < size:
            return None
        frame = json.loads(body)
        if not isinstance(frame, dict):
            raise ValueError("frame is not a JSON object")
        return frame


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
        self.flow = tracking.Flow()

    def call(self, fn: str, args: dict[str, Any]) -> Any:
        if self.abort is not None:
            raise SubCallAborted(self.abort)
        slot = _Slot()
        with self._lock:
            self._next_id += 1
            call_id = self._next_id
            self._waiting[call_id] = slot
        try:
            try:
                self._channel.send({"type": "call", "id": call_id, "fn": fn, "args": args})
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{fn}: arguments must be JSON-serialisable: {exc}") from None
            slot.done.wait()
        finally:
            with self._lock:
                self._waiting.pop(call_id, None)
        reply = slot.reply
        if reply.get("ok"):
            self.flow.received(call_id, reply.get("value"))
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


class CappedWriter:
    """A text stream that keeps the first `cap` characters and counts the rest."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._parts: list[str] = []
        self._kept = 0
        self.total = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.total += len(text)
        room = self._cap - self._kept
        if room > 0:
            piece = text[:room]
            self._parts.append(piece)
            self._kept += len(piece)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        text = "".join(self._parts)
        dropped = self.total - self._kept
        if dropped:
            sep = "" if text.endswith("\n") else "\n"
            text += f"{sep}... [+{dropped:,} more chars not captured]\n"
        return text


def describe(value: Any) -> str:
    """Short type-and-size text for one variable, e.g. "str, 1,234 chars"."""
    kind = type(value)
    if issubclass(kind, str):
        return f"str, {len(value):,} chars"
    if issubclass(kind, bytes | bytearray):
        return f"{kind.__name__}, {len(value):,} bytes"
    if issubclass(kind, list | tuple | dict | set | frozenset):
        return f"{kind.__name__}, {len(value):,} items"
    if issubclass(kind, type):
        return "class"
    if issubclass(kind, types.FunctionType | types.BuiltinFunctionType | types.MethodType):
        return "function"
    return kind.__name__


def user_values(namespace: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in list(namespace.items())
        if not name.startswith("_")
        and name not in RESERVED
        and not isinstance(value, types.ModuleType)
    }


def user_variables(namespace: dict[str, Any]) -> dict[str, str]:
    return {name: describe(value) for name, value in user_values(namespace).items()}


def _only_cell_frames(te: traceback.TracebackException) -> None:
    """Drop the harness's frames so the model sees only its own code in tracebacks."""
    kept = [f for f in te.stack if f.filename.startswith("<cell")]
    te.stack = traceback.StackSummary.from_list(kept)
    for linked in (te.__cause__, te.__context__):
        if linked is not None:
            _only_cell_frames(linked)


def format_error(exc: BaseException) -> str:
    te = traceback.TracebackException.from_exception(exc)
    _only_cell_frames(te)
    return "".join(te.format())


class Session:
    """The persistent namespace plus the functions model code can call."""

    def __init__(
        self, context: Any, calls: SubCalls, gate: InterruptGate, cap: int, reads: tracking.Reads
    ) -> None:
        self._calls = calls
        self._reads = reads
        self._final_value: Any = None
        self._gate = gate
        self._cap = cap
        self._cells = 0
        self._reserve: bytearray | None = bytearray(EMERGENCY_RESERVE)
        self.final: dict[str, Any] | None = None
        self.namespace: dict[str, Any] = {}
        self._reserved = {"context": context, **self._api()}
        self.restore()

    def restore(self) -> None:
        """Put back the reserved names, whatever the last cell did to them."""
        self.namespace.update(self._reserved)
        self.namespace["__name__"] = "__main__"
        self.namespace["__builtins__"] = builtins

    def _api(self) -> dict[str, Any]:
        calls, session = self._calls, self

        def llm_query(prompt: str, model: str | None = None) -> str:
            """Ask the sub-model one question; returns its answer text."""
            _check_str("llm_query", "prompt", prompt)
            _check_model("llm_query", model)
            return calls.call("llm_query", {"prompt": prompt, "model": model})

        def llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]:
            """Ask the sub-model many questions concurrently; answers come back in order."""
            prompts = _check_prompts("llm_query_batched", prompts)
            _check_model("llm_query_batched", model)
            return calls.call("llm_query_batched", {"prompts": prompts, "model": model})

        def rlm_query(prompt: str, context: Any = None) -> str:
            """Start a child RLM on `context` (default: the prompt itself); returns its answer."""
            _check_str("rlm_query", "prompt", prompt)
            return calls.call("rlm_query", {"prompt": prompt, "context": context})

        def rlm_query_batched(prompts: list[str], contexts: list[Any] | None = None) -> list[str]:
            """Run one child RLM per prompt concurrently; answers come back in order."""
            prompts = _check_prompts("rlm_query_batched", prompts)
            if contexts is not None:
                if not isinstance(contexts, list | tuple) or len(contexts) != len(prompts):
                    raise TypeError(
                        "rlm_query_batched: contexts must be None or a list as long as prompts"
                    )
                contexts = list(contexts)
            args = {"prompts": prompts, "contexts": contexts}
            return calls.call("rlm_query_batched", args)

        def SHOW_VARS() -> str:
            """Names, types and sizes of the variables you have defined."""
            found = user_variables(session.namespace)
            if not found:
                return "No variables defined yet (besides `context`)."
            return "\n".join(f"{name}: {desc}" for name, desc in found.items())

        def FINAL(value: Any) -> None:
            """End the run with `value` (converted to str) as the answer."""
            session.final, session._final_value = {"value": str(value), "var": None}, value
            raise FinalAnswer

        def FINAL_VAR(name: Any) -> None:
            """End the run with the value of the variable called `name` as the answer."""
            if not isinstance(name, str):
                session.final, session._final_value = {"value": str(name), "var": None}, name
                raise FinalAnswer
            key = name.strip().strip("'\"` ")
            if key not in session.namespace:
                # FINAL_VAR(answer) instead of FINAL_VAR("answer"): find the variable holding it
                key = next((k for k, v in session.namespace.items() if v is name), key)
            if key not in session.namespace and not key.isidentifier():
                # FINAL_VAR("48213"): no variable can have that name, so it is the answer itself
                # (small models mix the two up and would otherwise loop on the NameError)
                session.final, session._final_value = {"value": name, "var": None}, name
                raise FinalAnswer
            if key not in session.namespace:
                known = ", ".join(user_variables(session.namespace)) or "none"
                raise NameError(
                    f"FINAL_VAR({name!r}): there is no variable named {key!r} "
                    f"(defined: {known}). Assign the answer to a variable in a cell first, "
                    "or call FINAL(value) with the answer itself."
                )
            value = session.namespace[key]
            session.final, session._final_value = {"value": str(value), "var": key}, value
            raise FinalAnswer

        api = (llm_query, llm_query_batched, rlm_query, rlm_query_batched)
        return {f.__name__: f for f in (*api, SHOW_VARS, FINAL, FINAL_VAR)}

    def run_cell(self, code: str) -> dict[str, Any]:
        self._cells += 1
        filename = f"<cell {self._cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        out, err = CappedWriter(self._cap), CappedWriter(self._cap)
        self.final, self._calls.abort, error = None, None, None
        sys.stdout, sys.stderr = out, err
        try:
            self._gate.pending = False
            self._gate.armed = self._reads.active = True
            try:
                self._exec(code, filename)
            finally:
                self._gate.armed = self._reads.active = False
        except FinalAnswer:
            pass
        except BaseException as exc:  # model errors are data, KeyboardInterrupt and exit() too
            self._reserve = None  # frees room to format a MemoryError's traceback
            error = format_error(exc)
            err.write(error)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if error is None and self._calls.abort is not None:
            error = f"SubCallAborted: {self._calls.abort}\n"
        self.restore()
        self._refill_reserve()
        reads, assignments = self._reads.take(), self._data_flow()
        return {
            "type": "done",
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "stdout_total": out.total,
            "error": error,
            "final": self.final,
            "variables": user_variables(self.namespace),
            "reads": reads,
            "assignments": assignments,
        }

    def _data_flow(self) -> dict[str, list[str]]:
        """Which received sub-call results the variables (and the final answer) now hold."""
        flow, value, self._final_value = self._calls.flow, self._final_value, None
        try:
            if self.final is not None:
                self.final["sources"] = flow.sources(value)
            return flow.changed(user_values(self.namespace))
        except Exception:  # the trace loses a detail; the model's run must not
            return {}

    def _exec(self, code: str, filename: str) -> None:
        tree = ast.parse(code, filename=filename)
        last = None
        # Like a notebook, show the value of a trailing expression: small models rely on it.
        if tree.body and isinstance(tail := tree.body[-1], ast.Expr):
            tree.body.pop()
            last = ast.Expression(tail.value)
        exec(compile(tree, filename, "exec"), self.namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), self.namespace)
            if value is not None:
                print(repr(value))

    def _refill_reserve(self) -> None:
        if self._reserve is None:
            with contextlib.suppress(MemoryError):
                self._reserve = bytearray(EMERGENCY_RESERVE)


def _check_str(fn: str, name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{fn}: {name} must be a str, got {type(value).__name__}")


def _check_model(fn: str, model: Any) -> None:
    if model is not None:
        _check_str(fn, "model", model)


def _check_prompts(fn: str, prompts: Any) -> list[str]:
    if not isinstance(prompts, list | tuple) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{fn}: prompts must be a list of str")
    return list(prompts)


def load_context(path: str, kind: str) -> Any:
    return read_context(open_context(path, kind), kind)


def open_context(path: str, kind: str) -> Any:
    """Opened before privileges are dropped: the trace folder need not be readable by others."""
    if kind == "json":
        return open(path, encoding="utf-8")
    # newline="" keeps "\r\n" intact so character offsets match the original file
    return open(path, encoding="utf-8", newline="")


def read_context(f: Any, kind: str) -> Any:
    with f:
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
    in_fd, out_fd, path, kind, cap, memory_mb, *rest = argv
    for fd in (int(in_fd), int(out_fd)):
        os.set_inheritable(fd, False)
    gate = InterruptGate()
    signal.signal(signal.SIGINT, gate.handler)
    channel = Channel(int(in_fd), int(out_fd), gate)
    try:
        source = open_context(path, kind)
        if rest and rest[0] != "-":
            confine.drop_privileges(int(rest[0]))
        # after the drop, so that RLIMIT_NPROC counts the new uid's tasks
        confine.apply_limits(int(memory_mb))
        reads = tracking.Reads()
        raw = read_context(source, kind)
        context = tracking.track(raw, reads)
        tracking.patch_modules()
    except BaseException as exc:
        channel.send({"type": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    calls = SubCalls(channel)
    calls.flow.set_document(raw)
    session = Session(context, calls, gate, int(cap), reads)
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
