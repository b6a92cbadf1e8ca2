"""Model calls through litellm: one `complete()` is one traced node with usage, cost and latency.

litellm is imported lazily (it takes seconds) and configured for offline use; failures become a
one-line `ModelError` that names the model and never contains a key.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rlm_core.local_model import is_local
from rlm_core.types import Completion, ModelError

_litellm: ModuleType | None = None
_import_lock = threading.Lock()

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
_RAW_TEXT_CHARS = 200
_KEY_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,}"),
)
_PROVIDER_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*|\w+(?:Error|Exception)(?::|\s+-)\s*)+")


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
            from rlm_core import demo, local_model

            demo.register(litellm)
            local_model.register(litellm)
            _litellm = litellm
    return _litellm


def _is_demo(model: str) -> bool:
    return model.startswith("demo/")


def _table_entry(model: str) -> dict[str, Any] | None:
    """The entry of litellm's bundled price table for `model`, found without any network call.

    `litellm.get_model_info` is avoided on purpose: for Ollama and vLLM it queries the server, and
    for Ollama it invents a zero price for models the table does not list.
    """
    try:
        litellm = load_litellm()
        table: dict[str, Any] = litellm.model_cost
        try:
            name, provider, _, _ = litellm.get_llm_provider(model)
        except Exception:
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
    except Exception:
        pass
    return None


def context_window(model: str) -> int | None:
    """Input tokens the model accepts according to litellm's table; None when unknown."""
    entry = _table_entry(model)
    if entry is None:
        return None
    for key in ("max_input_tokens", "max_tokens"):
        value = entry.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def price_per_token(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's table; None when the model is not priced."""
    if is_local(model):
        return 0.0, 0.0  # runs on this machine: free, known before its file is loaded
    entry = _table_entry(model)
    if entry is None:
        return None
    cost_in, cost_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if isinstance(cost_in, int | float) and isinstance(cost_out, int | float):
        return float(cost_in), float(cost_out)
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number else None


def _response_cost(litellm: ModuleType, resp: Any, model: str) -> float | None:
    hidden = getattr(resp, "_hidden_params", None) or {}
    # Provider-reported first: a litellm proxy's cost header, or `usage.cost` (e.g. OpenRouter).
    headers = hidden.get("additional_headers") or {}
    reported = _number(headers.get("llm_provider-x-litellm-response-cost"))
    if reported is None:
        reported = _number(getattr(getattr(resp, "usage", None), "cost", None))
    if reported is not None:
        return reported
    # litellm fills response_cost with 0.0 for some models it cannot price, so only trust its
    # arithmetic when the table really lists this model.
    if price_per_token(model) is None:
        return None
    computed = _number(hidden.get("response_cost"))
    if computed is not None:
        return computed
    try:
        return _number(litellm.completion_cost(completion_response=resp, model=model))
    except Exception:
        return None


def _scrub(text: str, api_key: str | None) -> str:
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def _short(text: str, api_key: str | None) -> str:
    text = _PROVIDER_PREFIX.sub("", " ".join(str(text).split()))
    text = _scrub(text, api_key)
    if len(text) > _RAW_TEXT_CHARS:
        text = text[: _RAW_TEXT_CHARS - 3].rstrip() + "..."
    return text


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header carried by a litellm error."""
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        if not source:
            continue
        try:
            headers = {str(k).lower(): str(v) for k, v in dict(source).items()}
        except Exception:
            continue
        if "retry-after-ms" in headers and _number(headers["retry-after-ms"]) is not None:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            continue
        seconds = _number(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None


@dataclass
class _Failure:
    """A classified failure: whether another attempt could help and what to tell the user.

    The message is `head` + (" after N retries" when retried) + (": detail" when given) + ".".
    """

    retry: bool
    head: str
    detail: str = ""
    wait_s: float | None = None

    def message(self, retries: int) -> str:
        after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
        detail = f": {self.detail.rstrip('.')}" if self.detail else ""
        return f"{self.head}{after}{detail}."


class _BadResponse(Exception):
    """A 200 response without a usable answer; retried like a server error."""


class LiteLLMClient:
    """Calls any litellm model, retrying transient failures; safe to share between threads."""

    def __init__(
        self,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        timeout_s: float = 600.0,
        temperature: float | None = None,
        backoff_s: float = 1.0,
    ) -> None:
        self.api_base = api_base
        self._api_key = api_key
        self.retries = max(0, retries)
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.backoff_s = backoff_s

    def __repr__(self) -> str:
        return f"LiteLLMClient(api_base={self.api_base!r}, retries={self.retries})"

    def complete(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        timeout_s: float | None = None,
        max_output_tokens: int | None = None,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """`deadline` (epoch seconds) and `cancel` bound the waits between retries: a run's time
        limit or Stop button must not sit out a 60 s Retry-After."""
        litellm = load_litellm()
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        kwargs = self._call_kwargs(model, messages, timeout, max_output_tokens)
        attempt = 0
        retried: list[str] = []
        while True:
            started = time.monotonic()
            try:
                resp = litellm.completion(**kwargs)
                latency = time.monotonic() - started
                done = self._completion(litellm, resp, model, latency)
                return dataclasses.replace(done, retry_errors=retried)
            except _BadResponse as exc:
                failure = _Failure(
                    True, f"The provider returned an unusable answer for {model}", str(exc)
                )
            except Exception as exc:
                failure = self._classify(litellm, exc, model, timeout)
            if not failure.retry or attempt >= self.retries:
                error = ModelError(failure.message(attempt if failure.retry else 0))
                error.retry_errors = tuple(retried)
                raise error from None
            delay = self._delay(attempt, failure.wait_s)
            if deadline is not None and time.time() + delay >= deadline:
                error = ModelError(
                    failure.message(attempt).rstrip(".") + "; no time left to retry."
                )
                error.retry_errors, error.out_of_time = tuple(retried), True
                raise error from None
            retried.append(failure.message(0))
            if cancel is not None and cancel.wait(delay):
                error = ModelError(
                    failure.message(attempt).rstrip(".") + "; stopped while waiting."
                )
                error.retry_errors = tuple(retried)
                raise error from None
            if cancel is None:
                time.sleep(delay)
            attempt += 1

    def _call_kwargs(
        self,
        model: str,
        messages: list[dict[str, str]],
        timeout: float,
        max_output_tokens: int | None,
    ) -> dict[str, Any]:
        # litellm's own retries would hide attempts from our backoff and from the error message.
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "timeout": timeout,
            "num_retries": 0,
            "max_retries": 0,
            "drop_params": True,
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if max_output_tokens is not None:
            kwargs["max_tokens"] = max_output_tokens
        if not _is_demo(model):
            if self.api_base:
                kwargs["api_base"] = self.api_base
            if self._api_key:
                kwargs["api_key"] = self._api_key
            elif self.api_base and model.startswith(("openai/", "hosted_vllm/")):
                # local OpenAI-compatible servers (llama.cpp, vLLM, LM Studio) accept any key,
                # but litellm refuses to send a request without one
                kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or LOCAL_SERVER_KEY
        return kwargs

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.backoff_s * 0.1)
        base = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
        return base + random.uniform(0, base * 0.25)

    def _completion(self, litellm: ModuleType, resp: Any, model: str, latency: float) -> Completion:
        choices = getattr(resp, "choices", None)
        if not choices:
            raise _BadResponse("no choices in the response")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise _BadResponse("the first choice has no message")
        content = getattr(message, "content", None)
        usage = getattr(resp, "usage", None)
        return Completion(
            text=content if isinstance(content, str) else "",
            model=model,
            tokens_in=_count(getattr(usage, "prompt_tokens", None)),
            tokens_out=_count(getattr(usage, "completion_tokens", None)),
            cost_usd=_response_cost(litellm, resp, model),
            latency_s=latency,
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def _classify(
        self, litellm: ModuleType, exc: Exception, model: str, timeout: float
    ) -> _Failure:
        key = self._api_key
        raw = _short(getattr(exc, "message", None) or str(exc), key)
        status = getattr(exc, "status_code", None)
        http = f" (HTTP {status})" if isinstance(status, int) else ""
        chain = _causes(exc)
        lowered = raw.lower()
        where = self.api_base if self.api_base and not _is_demo(model) else None

        if own := next((c for c in chain if isinstance(c, ModelError)), None):
            # raised by our own provider (local/ models) and already said for the user; litellm
            # wraps it as a connection error with its traceback in the message
            return _Failure(False, str(own).rstrip("."))
        if "llm provider not provided" in lowered or isinstance(
            exc, litellm.LiteLLMUnknownProvider
        ):
            return _Failure(
                False,
                f"Unknown model '{model}'",
                "litellm does not know this provider. Use e.g. openai/<name>, anthropic/<name>, "
                "ollama_chat/<name>, or demo/root",
            )
        if "missing" in lowered and any(w in lowered for w in ("api key", "api_key", "credential")):
            return _Failure(False, f"Missing API key for {model}", self._missing_key_hint(model))
        if isinstance(exc, litellm.AuthenticationError):
            return _Failure(False, f"Authentication failed for {model}", f"check the API key{http}")
        if isinstance(exc, litellm.PermissionDeniedError):
            return _Failure(False, f"Access denied for {model}{http}", raw)
        if isinstance(exc, litellm.ContextWindowExceededError):
            return _Failure(False, f"The prompt is too long for the context window of {model}")
        if isinstance(exc, litellm.NotFoundError):
            return _Failure(False, f"The provider does not know model {model}{http}", raw)
        if isinstance(exc, litellm.RateLimitError):
            return _Failure(True, f"Rate limited for {model}{http}", raw, _retry_after(exc))
        if isinstance(exc, litellm.Timeout) or any(
            type(c).__name__ in ("ReadTimeout", "TimeoutException", "APITimeoutError")
            for c in chain
        ):
            return _Failure(True, f"No answer from {model} within {timeout:g} s")
        target = where or "the provider"
        if any(isinstance(c, ConnectionRefusedError) for c in chain):
            return _Failure(True, f"Cannot reach {target} for {model}", "connection refused")
        if isinstance(exc, litellm.APIConnectionError) or any(
            type(c).__name__ in ("ConnectError", "RemoteProtocolError") for c in chain
        ):
            return _Failure(True, f"Cannot reach {target} for {model}", raw)
        if any(isinstance(c, json.JSONDecodeError) for c in chain) or "expecting value" in lowered:
            return _Failure(True, f"The provider returned a malformed response for {model}")
        if isinstance(status, int) and status >= 500:
            return _Failure(
                True, f"The provider returned an error for {model}", f"HTTP {status} {raw}"
            )
        if isinstance(exc, litellm.BadRequestError) or (isinstance(status, int) and status >= 400):
            return _Failure(False, f"The provider rejected the request for {model}{http}", raw)
        return _Failure(False, f"The call to {model} failed", f"{type(exc).__name__}: {raw}")

    def _missing_key_hint(self, model: str) -> str:
        try:
            missing = load_litellm().validate_environment(model=model).get("missing_keys") or []
        except Exception:
            missing = []
        names = " or ".join(str(k) for k in missing[:2]) or "the provider's API key variable"
        return f"set {names} or enter a key"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


LOCAL_SERVER_KEY = "no-key-needed"


def check_model(model: str, *, api_base: str | None = None, api_key: str | None = None) -> None:
    """Raise ModelError, before any call, for a model litellm cannot route or has no key for."""
    from rlm_core.demo import DEMO_MODELS

    if _is_demo(model):
        if model not in DEMO_MODELS:
            raise ModelError(
                f"Unknown demo model '{model}'. The demo models are: {', '.join(DEMO_MODELS)}."
            )
        return
    litellm = load_litellm()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception:
        raise ModelError(
            f"Unknown model '{model}': litellm does not know this provider. Use e.g. "
            "openai/<name>, anthropic/<name>, ollama_chat/<name>, or demo/root."
        ) from None
    if api_key or api_base:
        return
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:
        return
    if missing:
        names = " or ".join(str(k) for k in missing[:2])
        raise ModelError(f"Missing API key for {model}: set {names} or enter a key.")
