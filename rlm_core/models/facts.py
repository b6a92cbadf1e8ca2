"""What is known about a model by its name, without calling it: its input window, how many
tokens a text is for it, and its price. One answer for litellm names, `local/` GGUF files and
the `demo/` models alike; None where nothing is known (never a made-up 0 price)."""

from __future__ import annotations

import logging

from rlm_core.models import local
from rlm_core.models.litellm_client import load_litellm, table_entry, table_price
from rlm_core.models.scripted import DEMO_WINDOW, is_demo

CHARS_PER_TOKEN = 4
"""The estimate used where no tokenizer is worth running (and what the demo models report)."""
ASSUMED_WINDOW = 32_000
"""Tokens assumed when neither litellm's table nor the caller knows the model's window."""
_EXACT_COUNT_MAX_CHARS = 2_000_000
"""Longer texts are estimated: a tokenizer pass over 100 MB takes minutes."""
_log = logging.getLogger(__name__)


def context_window(model: str, *, load: bool = False) -> int | None:
    """Input tokens the model accepts; None when unknown. A `local/` file's window is read from
    the file, which is loaded for it only with `load` (analysing a stored run must not load a
    1 GB model); once loaded, its window is known either way."""
    if is_demo(model):
        return DEMO_WINDOW
    if local.is_local(model):
        return local.context_window(model) if load else local.loaded_window(model)
    entry = table_entry(model)
    if entry is None:
        return None
    for key in ("max_input_tokens", "max_tokens"):
        value = entry.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def window_tokens(model: str, override: int | None = None) -> tuple[int, str]:
    """The model's input window in tokens and where that number came from."""
    if override:
        return int(override), "option"
    window = context_window(model, load=True)
    return (window, "litellm") if window else (ASSUMED_WINDOW, "assumed")


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def count_tokens(model: str, text: str, *, cap: int | None = None) -> int:
    """Tokens of `text` for `model`, with its own tokenizer where there is one. A text that is
    plainly more than `cap` tokens (or huge) is estimated instead: it does not fit either way."""
    too_long = cap is not None and len(text) > 12 * cap
    if is_demo(model) or too_long or len(text) > _EXACT_COUNT_MAX_CHARS:
        return estimate_tokens(text)  # the demo models themselves report chars / 4
    if local.is_local(model):
        return local.count_tokens(model, text)
    try:
        return int(load_litellm().token_counter(model=model, text=text))
    except Exception as exc:  # an unknown tokenizer must not fail a run: estimate instead
        _log.debug("token_counter failed for %s: %s", model, exc)
        return estimate_tokens(text)


def token_bound(model: str, text: str, *, cap: int | None = None) -> int:
    """Tokens of `text` as a budget must count them: never fewer than the model will. A text
    too long to run the tokenizer over counts its UTF-8 bytes, which no tokenizer's count
    exceeds (every token stands for at least one byte)."""
    if len(text) > _EXACT_COUNT_MAX_CHARS and not is_demo(model):
        return len(text.encode("utf-8", "surrogatepass"))
    return count_tokens(model, text, cap=cap)


def output_limit(model: str) -> int | None:
    """The most tokens one answer of the model may have (litellm's table); None when unknown."""
    if is_demo(model) or local.is_local(model):
        return None
    value = (table_entry(model) or {}).get("max_output_tokens")
    return value if isinstance(value, int) and value > 0 else None


def price_per_token(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's table; None when the model is not priced."""
    if local.is_local(model) or is_demo(model):
        return 0.0, 0.0  # runs on this machine: free, known before a file is loaded
    return table_price(model)
