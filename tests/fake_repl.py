"""An in-process REPL for fast tests of the loop: the same namespace rules as the worker (the
reserved names, FINAL / FINAL_VAR, sub-calls through the handler), but no process, no pipe,
no limits. Model code here is the test's own, never hostile."""

from __future__ import annotations

import contextlib
import io
import threading
import traceback
from typing import Any

from rlm_core.repl.process import ContextRef
from rlm_core.repl.sandbox import CallHandler
from rlm_core.types import CellResult


class _Final(BaseException):
    def __init__(self, value: str, var: str | None) -> None:
        self.value, self.var = value, var


class FakeRepl:
    def __init__(self, context: ContextRef, handler: CallHandler) -> None:
        with open(context.path, encoding="utf-8") as f:
            self.context = f.read()
        self.handler = handler
        self.namespace: dict[str, Any] = {}
        self.closed = False

    @property
    def isolation(self) -> str:
        return "in-process (tests)"

    def _reserved(self) -> dict[str, Any]:
        def final_var(name: str) -> None:
            raise _Final(str(self.namespace[name]), name)

        def final(value: Any) -> None:
            raise _Final(str(value), None)

        def call(fn: str, **args: Any) -> Any:
            return self.handler(fn, args)

        return {
            "context": self.context,
            "llm_query": lambda prompt, model=None: call("llm_query", prompt=prompt, model=model),
            "llm_query_batched": lambda prompts, model=None: call(
                "llm_query_batched", prompts=prompts, model=model
            ),
            "FINAL": final,
            "FINAL_VAR": final_var,
        }

    def execute(
        self,
        code: str,
        *,
        timeout_s: float,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> CellResult:
        self.namespace.update(self._reserved())
        out, result = io.StringIO(), CellResult()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, self.namespace)
        except _Final as final:
            result.final = {"value": final.value, "var": final.var}
        except Exception:
            result.error = traceback.format_exc(limit=1)
        result.stdout = result.stdout or out.getvalue()
        result.variables = {
            k: type(v).__name__
            for k, v in self.namespace.items()
            if not k.startswith("_") and k not in self._reserved()
        }
        return result

    def close(self) -> None:
        self.closed = True
