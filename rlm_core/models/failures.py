"""Why a litellm call failed, in one line for the user: classified as worth retrying or not,
with any key scrubbed out and the provider's noise cut short."""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rlm_core.secrets import Scrubber

_RAW_TEXT_CHARS = 200
_KEY_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,}"),
)
_PROVIDER_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*|\w+(?:Error|Exception)(?::|\s+-)\s*)+")


def number(value: Any) -> float | None:
    """A finite, non-negative number from a header or a field, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 and value == value else None


def scrub(text: str, api_key: str | None) -> str:
    """The typed key, the environment's keys and anything shaped like a key, masked."""
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    text = Scrubber.for_run().text(text)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def short(text: str, api_key: str | None) -> str:
    text = _PROVIDER_PREFIX.sub("", " ".join(str(text).split()))
    text = scrub(text, api_key)
    if len(text) > _RAW_TEXT_CHARS:
        text = text[: _RAW_TEXT_CHARS - 3].rstrip() + "..."
    return text


def causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def retry_after(exc: BaseException) -> float | None:
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
        if "retry-after-ms" in headers and number(headers["retry-after-ms"]) is not None:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            continue
        seconds = number(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None


@dataclass
class Failure:
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


class BadResponse(Exception):
    """A 200 response without a usable answer; retried like a server error."""


def classify(
    litellm: ModuleType,
    exc: Exception,
    model: str,
    timeout: float,
    *,
    api_key: str | None,
    api_base: str | None,
) -> Failure:
    """What went wrong in one attempt, whether another could help, and what to tell the user."""
    raw = short(getattr(exc, "message", None) or str(exc), api_key)
    status = getattr(exc, "status_code", None)
    http = f" (HTTP {status})" if isinstance(status, int) else ""
    chain = causes(exc)
    lowered = raw.lower()
    if "llm provider not provided" in lowered or isinstance(exc, litellm.LiteLLMUnknownProvider):
        return Failure(
            False,
            f"Unknown model '{model}'",
            "litellm does not know this provider. Use e.g. openai/<name>, anthropic/<name>, "
            "ollama_chat/<name>, or demo/root",
        )
    if "missing" in lowered and any(w in lowered for w in ("api key", "api_key", "credential")):
        return Failure(False, f"Missing API key for {model}", _missing_key_hint(litellm, model))
    if isinstance(exc, litellm.AuthenticationError):
        return Failure(False, f"Authentication failed for {model}", f"check the API key{http}")
    if isinstance(exc, litellm.PermissionDeniedError):
        return Failure(False, f"Access denied for {model}{http}", raw)
    if isinstance(exc, litellm.ContextWindowExceededError):
        return Failure(False, f"The prompt is too long for the context window of {model}")
    if isinstance(exc, litellm.NotFoundError):
        return Failure(False, f"The provider does not know model {model}{http}", raw)
    if isinstance(exc, litellm.RateLimitError):
        return Failure(True, f"Rate limited for {model}{http}", raw, retry_after(exc))
    if isinstance(exc, litellm.Timeout) or any(
        type(c).__name__ in ("ReadTimeout", "TimeoutException", "APITimeoutError") for c in chain
    ):
        return Failure(True, f"No answer from {model} within {timeout:g} s")
    target = api_base or "the provider"
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return Failure(True, f"Cannot reach {target} for {model}", "connection refused")
    if isinstance(exc, litellm.APIConnectionError) or any(
        type(c).__name__ in ("ConnectError", "RemoteProtocolError") for c in chain
    ):
        return Failure(True, f"Cannot reach {target} for {model}", raw)
    if any(isinstance(c, json.JSONDecodeError) for c in chain) or "expecting value" in lowered:
        return Failure(True, f"The provider returned a malformed response for {model}")
    if isinstance(status, int) and status >= 500:
        return Failure(True, f"The provider returned an error for {model}", f"HTTP {status} {raw}")
    if isinstance(exc, litellm.BadRequestError) or (isinstance(status, int) and status >= 400):
        return Failure(False, f"The provider rejected the request for {model}{http}", raw)
    return Failure(False, f"The call to {model} failed", f"{type(exc).__name__}: {raw}")


def _missing_key_hint(litellm: ModuleType, model: str) -> str:
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # the hint is a courtesy: without it the message still says what is wrong
        missing = []
    names = " or ".join(str(k) for k in missing[:2]) or "the provider's API key variable"
    return f"set {names} or enter a key"
