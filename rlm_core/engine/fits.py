"""Whether a sub-call's prompt fits the sub model's window, counted before it is sent, and
how much of a cell's output fits the root model's.

A prompt that cannot fit comes back to the model's code at once as an error saying how big it
was and how big it may be, instead of a provider error after a long wait (a served 1.5B model
reads a 25,000-token prompt for 12 minutes before it fails). Models whose window nobody reports
are sent the prompt as before.
"""

from __future__ import annotations

from rlm_core.config import RLMConfig
from rlm_core.models import served
from rlm_core.models.facts import CHARS_PER_TOKEN, context_window, count_tokens

ANSWER_ROOM = 1_000
"""Tokens kept free for the answer (at most an eighth of a small window)."""


def window_of(model: str, config: RLMConfig) -> int | None:
    """A model's input window: what is known by its name or file, else what its server reports
    (llama.cpp's slot size, vLLM's max_model_len, Ollama's and LM Studio's)."""
    if (known := context_window(model, load=True)) is not None:
        return known
    base = served.asks_server(model, config.api_base)
    return served.describe(model, base, config.api_key).window if base else None


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


OUTPUT_SHARE = 8
"""A cell's output shown to the root takes at most an eighth of the root's window: a small
served model (8,192 tokens) that printed the whole context was shown 20,000 characters, read
them for 80 s, and had room for only one more such turn. From 40k tokens up the default cap
(20,000) stands. Replays and forks keep the recorded run's cap (Run.output_chars)."""
MIN_OUTPUT_CHARS = 1_000
SMALL_MODEL_WINDOW = 8_192
"""The window assumed for a small model that nobody reports one for (llama-cpp-python's server
does not): servers start small models with 2,048-8,192 tokens unless told otherwise."""


def output_chars(max_output_chars: int, window: int | None) -> int:
    """The output cap for a root model with `window` tokens (None: unknown, the configured cap)."""
    if window is None:
        return max_output_chars
    share = max(MIN_OUTPUT_CHARS, window * CHARS_PER_TOKEN // OUTPUT_SHARE)
    return min(max_output_chars, share)
