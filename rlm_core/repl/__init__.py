"""Sandboxed REPL: model-written code runs in a separate worker process, sub-calls come back here.

See sandbox.py for the parent side and worker.py for the (stdlib-only) worker process.
"""

from rlm_core.repl.process import ContextRef
from rlm_core.repl.sandbox import CallHandler, Sandbox, SubCallError

__all__ = ["CallHandler", "ContextRef", "Sandbox", "SubCallError"]
