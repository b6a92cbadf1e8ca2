"""Whether a sub-call's prompt fits the sub model's window, counted before it is sent.

A prompt that cannot fit comes back to the model's code at once as an error saying how big it
was and how big it may be, instead of a provider error after a long wait (a served 1.5B model
reads a 25,000-token prompt for 12 minutes before it fails). Models whose window nobody reports
are sent the prompt as before.
"""

from __future__ import annotations

from rlm_core.config import RLMConfig
from rlm_core.models import served
from rlm_core.models.facts import context_window, count_tokens

ANSWER_ROOM = 1_000
"""Tokens kept free for the answer (at most an eighth of a small window)."""


def served_window(model: str, config: RLMConfig) -> int | None:
    """The window the model's server reports (llama.cpp's slot size, vLLM's max_model_len,
    Ollama's and LM Studio's), for models litellm's table does not know."""
    base = served.asks_server(model, config.api_base)
    return served.describe(model, base, config.api_key).window if base else None


def sub_window(model: str, config: RLMConfig) -> int | None:
    """The sub model's input window: what is known by its name or file, else its server's."""
    return context_window(model, load=True) or served_window(model, config)


NOT_SENT = "Nothing was sent."
"""In the error of a prompt refused for its size (the linter tells it from one that failed)."""


def too_big(model: str, prompt: str, window: int | None) -> str | None:
    """None when the prompt fits `model`'s window (or it is unknown); else the error the code
    gets back."""
    if window is None:
        return None
    allowed = window - min(ANSWER_ROOM, window // 8)
    tokens = count_tokens(model, prompt, cap=allowed)
    if tokens <= allowed:
        return None
    fitting = int(len(prompt) * allowed / tokens) // 1000 * 1000
    return (
        f"llm_query prompt too long for {model}: about {tokens:,} tokens ({len(prompt):,} "
        f"characters), but it takes at most {allowed:,} (a window of {window:,} less room for "
        f"the answer). {NOT_SENT} Send a slice of about {fitting:,} characters or less."
    )
