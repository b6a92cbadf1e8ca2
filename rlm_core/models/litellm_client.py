"""Any model litellm can reach (hosted providers, Ollama, OpenAI-compatible servers), bound to
one model name, retrying transient failures; every failure becomes a one-line `ModelError`
that names the model and never contains a key.

litellm is imported lazily (it takes seconds) and configured for offline use.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from types import ModuleType
from typing import Any

from rlm_core.errors import ModelError
from rlm_core.models.failures import BadResponse, Failure, classify, number
from rlm_core.types import Completion

_litellm: ModuleType | None = None
_import_lock = threading.Lock()

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
LOCAL_SERVER_KEY = "no-key-needed"
"""What an OpenAI-compatible server that checks no key is sent (litellm refuses to send none)."""


def load_litellm() -> ModuleType:
    """Imports and configures litellm once per process (safe to call from any thread)."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _import_lock:
        if _litellm is None:
            # These are read at import time: no price-map download, no Hugging Face tokenizer
            # downloads, and no silent loading of a stray .env from the working directory.
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["LITELLM_MODE"] = "PRODUCTION"
            import litellm

            litellm.suppress_debug_info = True
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
                logging.getLogger(name).setLevel(logging.ERROR)
            _litellm = litellm
    return _litellm


def table_entry(model: str) -> dict[str, Any] | None:
    """The entry of litellm's bundled price table for `model`, found without any network call.

    `litellm.get_model_info` is avoided on purpose: for Ollama and vLLM it queries the server, and
    for Ollama it invents a zero price for models the table does not list.
    """
    litellm = load_litellm()
    table: dict[str, Any] = litellm.model_cost
    try:
        name, provider, _, _ = litellm.get_llm_provider(model)
    except Exception:  # litellm raises many types for a name it cannot route: look it up as is
        name, provider = model, None
    keys = [model]
    if provider:
        keys.append(f"{provider}/{name}")
        if provider == "ollama_chat":
            keys.append(f"ollama/{name}")
    for key in keys:
        entry = table.get(key)
        if isinstance(entry, dict):
            return entry
    entry = table.get(name)
    # A bare name only counts when it belongs to the same provider (e.g. "gpt-4o" for openai),
    # otherwise "openrouter/gpt-4o" would be priced as OpenAI's model.
    if isinstance(entry, dict) and provider and entry.get("litellm_provider") == provider:
        return entry
    return None


def table_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's table; None when the model is not priced."""
    entry = table_entry(model) or {}
    cost_in, cost_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if isinstance(cost_in, int | float) and isinstance(cost_out, int | float):
        return float(cost_in), float(cost_out)
    return None


def _response_cost(litellm: ModuleType, resp: Any, model: str) -> float | None:
    hidden = getattr(resp, "_hidden_params", None) or {}
    # Provider-reported first: a litellm proxy's cost header, or `usage.cost` (e.g. OpenRouter).
    headers = hidden.get("additional_headers") or {}
    reported = number(headers.get("llm_provider-x-litellm-response-cost"))
    if reported is None:
        reported = number(getattr(getattr(resp, "usage", None), "cost", None))
    if reported is not None:
        return reported
    # litellm fills response_cost with 0.0 for some models it cannot price, so only trust its
    # arithmetic when the table really lists this model.
    if table_price(model) is None:
        return None
    computed = number(hidden.get("response_cost"))
    if computed is not None:
        return computed
    try:
        return number(litellm.completion_cost(completion_response=resp, model=model))
    except Exception:  # litellm cannot price this response after all: the cost is unknown
        return None


_ENV_PREFIX = {"ollama_chat": "OLLAMA", "hosted_vllm": "HOSTED_VLLM"}
"""Providers whose environment variables are not named after their model prefix."""


def environment_key_for(model: str, api_base: str) -> str | None:
    """The provider's environment key, when the environment itself pairs it with `api_base`
    (`OPENAI_API_KEY` with `OPENAI_API_BASE` or `OPENAI_BASE_URL` naming the same URL): the
    user's way of saying this base may have that key. None otherwise."""
    provider = model.split("/", 1)[0]
    prefix = _ENV_PREFIX.get(provider, provider.upper())
    key = os.environ.get(f"{prefix}_API_KEY")
    bases = (os.environ.get(f"{prefix}_API_BASE"), os.environ.get(f"{prefix}_BASE_URL"))
    wanted = api_base.strip().rstrip("/")
    if key and any(b and b.strip().rstrip("/") == wanted for b in bases):
        return key
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class LiteLLMClient:
    """One litellm model; safe to share between threads."""

    def __init__(
        self,
        name: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        timeout_s: float = 600.0,
        temperature: float | None = None,
        seed: int | None = None,
        backoff_s: float = 1.0,
    ) -> None:
        self.name = name
        self.api_base = api_base
        self._api_key = api_key
        self.retries = max(0, retries)
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.seed = seed
        self.backoff_s = backoff_s

    def __repr__(self) -> str:
        return f"LiteLLMClient({self.name!r}, api_base={self.api_base!r}, retries={self.retries})"

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        litellm = load_litellm()
        timeout = self.timeout_s
        if deadline is not None:
            timeout = max(1.0, min(timeout, deadline - time.time()))
        kwargs = self._call_kwargs(messages, timeout, max_output_tokens)
        attempt = 0
        retried: list[str] = []
        while True:
            started = time.monotonic()
            try:
                resp = litellm.completion(**kwargs)
                done = self._completion(litellm, resp, time.monotonic() - started)
                return dataclasses.replace(done, retry_errors=retried)
            except BadResponse as exc:
                failure = Failure(
                    True, f"The provider returned an unusable answer for {self.name}", str(exc)
                )
            except Exception as exc:  # every provider error is classified below, none escapes raw
                failure = classify(
                    litellm, exc, self.name, timeout, api_key=self._api_key, api_base=self.api_base
                )
            if not failure.retry or attempt >= self.retries:
                raise self._error(failure.message(attempt if failure.retry else 0), retried)
            delay = self._delay(attempt, failure.wait_s)
            if deadline is not None and time.time() + delay >= deadline:
                message = failure.message(attempt).rstrip(".") + "; no time left to retry."
                error = self._error(message, retried)
                error.out_of_time = True
                raise error
            retried.append(failure.message(0))
            if cancel is not None and cancel.wait(delay):
                stopped = failure.message(attempt).rstrip(".") + "; stopped while waiting."
                raise self._error(stopped, retried)
            if cancel is None:
                time.sleep(delay)
            attempt += 1

    @staticmethod
    def _error(message: str, retried: list[str]) -> ModelError:
        error = ModelError(message)
        error.retry_errors = tuple(retried)
        return error

    def _call_kwargs(
        self, messages: list[dict[str, str]], timeout: float, max_output_tokens: int | None
    ) -> dict[str, Any]:
        # litellm's own retries would hide attempts from our backoff and from the error message.
        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "timeout": timeout,
            "num_retries": 0,
            "max_retries": 0,
            "drop_params": True,
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if max_output_tokens is not None:
            kwargs["max_tokens"] = max_output_tokens
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        elif self.api_base:
            # Without a key litellm sends the provider's environment key (OPENAI_API_KEY, ...)
            # to whatever base was typed. It goes only to the base the environment names with
            # it; anything else gets a placeholder (local servers accept any key, and litellm
            # refuses to send a request without one).
            kwargs["api_key"] = environment_key_for(self.name, self.api_base) or LOCAL_SERVER_KEY
        return kwargs

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.backoff_s * 0.1)
        base = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
        return base + random.uniform(0, base * 0.25)

    def _completion(self, litellm: ModuleType, resp: Any, latency: float) -> Completion:
        choices = getattr(resp, "choices", None)
        if not choices:
            raise BadResponse("no choices in the response")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise BadResponse("the first choice has no message")
        content = getattr(message, "content", None)
        usage = getattr(resp, "usage", None)
        return Completion(
            text=content if isinstance(content, str) else "",
            model=self.name,
            tokens_in=_count(getattr(usage, "prompt_tokens", None)),
            tokens_out=_count(getattr(usage, "completion_tokens", None)),
            cost_usd=_response_cost(litellm, resp, self.name),
            latency_s=latency,
            finish_reason=getattr(choice, "finish_reason", None),
            cached_tokens=_count(
                getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
            ),
        )
