"""The REPL's persistent namespace, run in the worker: the functions model code can call
(`llm_query` & co., `SHOW_VARS`, `FINAL`, `FINAL_VAR`), running one cell with its output
captured, and what a cell leaves behind (variables, reads, data flow).

Stdlib only: worker.py loads this file by path and hands it the channel's sub-call client.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_core.repl.tracking import Reads
    from rlm_core.repl.worker import InterruptGate, SubCalls

EMERGENCY_RESERVE = 8 * 2**20
"""Memory held back, freed to format the traceback of a MemoryError."""


class FinalAnswer(BaseException):
    """Raised by FINAL / FINAL_VAR; a BaseException so model `except Exception` can't swallow it."""


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


@dataclass(frozen=True)
class Provenance:
    """How the worker follows the context into strings (tracking.py, compose.py), handed in by
    worker.py: the cell rewrite, the names it calls, and the places of a value's pieces."""

    reads: Reads
    rewrite: Callable[[ast.Module], ast.Module]
    builders: dict[str, Callable[..., Any]]
    segments: Callable[[Any], list[list[int]]]


class Session:
    """The persistent namespace plus the functions model code can call."""

    def __init__(
        self, context: Any, calls: SubCalls, gate: InterruptGate, cap: int, prov: Provenance
    ) -> None:
        self._calls = calls
        self._prov = prov
        self._reads = prov.reads
        self._final_value: Any = None
        self._gate = gate
        self._cap = cap
        self._cells = 0
        self._reserve: bytearray | None = bytearray(EMERGENCY_RESERVE)
        self.final: dict[str, Any] | None = None
        self.namespace: dict[str, Any] = {}
        self._reserved = {"context": context, **self._api(), **prov.builders}
        self.restore()

    def user_values(self) -> dict[str, Any]:
        """The variables model code defined (not the reserved names, modules or _private)."""
        return {
            name: value
            for name, value in list(self.namespace.items())
            if not name.startswith("_")
            and name not in self._reserved
            and not isinstance(value, types.ModuleType)
        }

    def user_variables(self) -> dict[str, str]:
        return {name: describe(value) for name, value in self.user_values().items()}

    def restore(self) -> None:
        """Put back the reserved names, whatever the last cell did to them."""
        self.namespace.update(self._reserved)
        self.namespace["__name__"] = "__main__"
        self.namespace["__builtins__"] = builtins

    def _api(self) -> dict[str, Any]:
        calls, session, prov = self._calls, self, self._prov

        def call(fn: str, args: dict[str, Any], texts: list[Any]) -> Any:
            # where each text's pieces came from, and what the cell copied since the last call:
            # the engine places the prompt's text in the context with them (never shown to code)
            froms = [prov.segments(t) for t in texts]
            extra = {"_from": froms, "_copied": prov.reads.recent.take()}
            return calls.call(fn, args | extra)

        def llm_query(prompt: str, model: str | None = None) -> str:
            """Ask the sub-model one question; returns its answer text."""
            _check_str("llm_query", "prompt", prompt)
            _check_model("llm_query", model)
            return call("llm_query", {"prompt": prompt, "model": model}, [prompt])

        def llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]:
            """Ask the sub-model many questions concurrently; answers come back in order."""
            prompts = _check_prompts("llm_query_batched", prompts)
            _check_model("llm_query_batched", model)
            return call("llm_query_batched", {"prompts": prompts, "model": model}, prompts)

        def rlm_query(prompt: str, context: Any = None) -> str:
            """Start a child RLM on `context` (default: the prompt itself); returns its answer."""
            _check_str("rlm_query", "prompt", prompt)
            args = {"prompt": prompt, "context": context}
            return call("rlm_query", args, [prompt, prompt if context is None else context])

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
            return call("rlm_query_batched", args, [*prompts, *(contexts or prompts)])

        def SHOW_VARS() -> str:
            """Names, types and sizes of the variables you have defined."""
            found = session.user_variables()
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
                known = ", ".join(session.user_variables()) or "none"
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
        reads, copies, assignments = (
            self._reads.take(),
            self._reads.take_copies(),
            self._data_flow(),
        )
        return {
            "type": "done",
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "stdout_total": out.total,
            "error": error,
            "final": self.final,
            "variables": self.user_variables(),
            "reads": reads,
            "copies": copies,
            "assignments": assignments,
        }

    def _data_flow(self) -> dict[str, list[str]]:
        """Which received sub-call results the variables (and the final answer) now hold."""
        flow, value, self._final_value = self._calls.flow, self._final_value, None
        try:
            if self.final is not None:
                self.final["sources"] = flow.sources(value)
            return flow.changed(self.user_values())
        except Exception:  # the trace loses a detail; the model's run must not
            return {}

    def _exec(self, code: str, filename: str) -> None:
        tree = self._prov.rewrite(ast.parse(code, filename=filename))
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
