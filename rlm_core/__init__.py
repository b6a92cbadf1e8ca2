"""RLM Tracer's engine: run Recursive Language Models and trace every node of the recursion.

Usable without any UI: `from rlm_core import RLM; RLM("demo/root", "demo/sub").run(ctx, q)`.
"""

from rlm_core.config import RLMConfig
from rlm_core.engine.rlm import RLM
from rlm_core.errors import ModelError
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunResult

__all__ = ["RLM", "ModelError", "Node", "RLMConfig", "RunResult", "TraceStore"]
