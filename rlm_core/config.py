"""RLMConfig: every knob of a run in one frozen dataclass (limits, models, sandbox).

API keys are accepted here so a run can use them, but `to_public_dict` never includes them:
that is the only form of the config that is written to traces, logs or exports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

MAX_DEPTH_ALLOWED = 5


@dataclass(frozen=True)
class RLMConfig:
    root_model: str = "demo/root"
    """litellm model string of the root model (writes REPL code)."""
    sub_model: str = "demo/sub"
    """litellm model string answering `llm_query` calls."""
    child_root_model: str | None = None
    """Root model of child RLMs started by `rlm_query`; None means the sub model."""
    api_base: str | None = None
    """Base URL for OpenAI-compatible servers (vLLM, llama.cpp, LM Studio, Ollama)."""
    api_key: str | None = field(default=None, repr=False)
    """Key for the provider; kept in memory only, never persisted."""
    max_iterations: int = 30
    """Root turns per RLM before it is asked once more for a final answer."""
    max_depth: int = 1
    """Deepest recursion level at which `rlm_query` still starts a child RLM (0-5)."""
    max_llm_calls: int | None = None
    """All model calls in the whole run tree (root, sub and child calls)."""
    max_tokens: int | None = None
    """Input plus output tokens over the whole run tree."""
    max_cost_usd: float | None = None
    """Spend over the whole run tree; calls of unknown cost cannot count towards it."""
    timeout_s: float | None = None
    """Wall-clock limit for the whole run."""
    cell_timeout_s: float = 60.0
    """Compute time one code cell may take (time waiting for models is not counted)."""
    max_output_chars: int = 20_000
    """Characters of each cell's output shown to the root model; the rest is marked as cut."""
    concurrency: int = 16
    """Sub-calls running at once for the batched functions."""
    worker_memory_mb: int | None = None
    """Address-space limit of the REPL worker; None sizes it from the context (4x + 1 GB)."""
    retries: int = 3
    """Retries of a model call after rate limits, timeouts and server errors."""
    request_timeout_s: float = 600.0
    """Timeout of one model request."""
    temperature: float | None = None
    """Sampling temperature passed to the models; None leaves the provider default."""
    prompt: str = "auto"
    """Root system prompt: "full", "small" (short, for small local models) or "auto" (by name)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_depth <= MAX_DEPTH_ALLOWED:
            raise ValueError(f"max_depth must be between 0 and {MAX_DEPTH_ALLOWED}")
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.prompt not in ("auto", "full", "small"):
            raise ValueError('prompt must be "auto", "full" or "small"')
        if self.cell_timeout_s <= 0:
            raise ValueError("cell_timeout_s must be positive")

    def with_(self, **changes: Any) -> RLMConfig:
        return replace(self, **changes)

    def to_public_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key")
        return data
