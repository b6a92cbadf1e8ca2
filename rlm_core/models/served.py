"""What a model server says about the model it serves: its parameter count, the names it goes by
and its window. llama.cpp's server, LM Studio, Ollama and vLLM each report some of this at their
own endpoints; plain OpenAI-compatible servers report only ids. Also: a size read from a name
(`qwen2.5-coder-1.5b-instruct`, `llama3.2:3b`, `mixtral-8x7b`, `smollm2-135m`).

Asked once per (API base, model) per process, with a short timeout, and never raising: a server
that is down or says nothing leaves the decision to the names.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

PROBE_TIMEOUT_S = 2.0
OLLAMA_BASE = "http://localhost:11434"
"""Where litellm sends `ollama/` and `ollama_chat/` models without an API base."""
SERVED_PREFIXES = ("openai/", "hosted_vllm/", "lm_studio/", "ollama/", "ollama_chat/")
"""Model names whose calls go to a server at an API base (the ones worth asking)."""

# "1.5b", "7B", "8x7b", "270m" between separators; "qwen2.5" or "q4_k_m" are not sizes
_SIZE = re.compile(r"(?<![\w.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class Served:
    """What the server said: each field None (or empty) where it said nothing."""

    params: float | None = None
    params_source: str = ""
    """Which endpoint and field gave the parameter count."""
    names: tuple[str, ...] = ()
    """Names the server gives the model: ids, a repository (vLLM), a file path (llama.cpp)."""
    window: int | None = None
    runtime: str = ""
    """The kind of server, when it showed: `llama.cpp`, `llama-cpp-python`, `LM Studio`,
    `Ollama` (all four run GGUF files on the user's own machine) or `vLLM`."""


GGUF_RUNTIMES = ("llama.cpp", "llama-cpp-python", "LM Studio", "Ollama")


def params_in_name(name: str) -> float | None:
    """The parameter count a model's name states, or None. The last size in the name wins
    (`qwen2.5-coder-1.5b` is 1.5 B; the `2.5` is a version)."""
    found = _SIZE.findall(name.rsplit("/", 1)[-1]) or _SIZE.findall(name)
    if not found:
        return None
    experts, number, unit = found[-1]
    scale = 1e9 if unit.lower() == "b" else 1e6
    return float(number) * scale * (int(experts) if experts else 1)


def served_name(model: str) -> str:
    """The name the server knows: the litellm name without its provider prefix."""
    return model.split("/", 1)[1] if model.startswith(SERVED_PREFIXES) else model


def server_root(api_base: str) -> str:
    """The server's root URL: `/v1` and trailing slashes removed (llama.cpp's `/props` and
    Ollama's `/api/show` live at the root, the OpenAI routes under `/v1`)."""
    base = api_base.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def asks_server(model: str, api_base: str | None) -> str | None:
    """The API base to ask about `model`, or None when its calls go to no server of the user's."""
    if api_base and model.startswith(SERVED_PREFIXES):
        return api_base
    if model.startswith(("ollama/", "ollama_chat/")):
        return OLLAMA_BASE
    return None


def describe(model: str, api_base: str, api_key: str | None = None) -> Served:
    """Everything the server at `api_base` reports about `model` (cached per process). One probe
    at a time: the 16 sub-calls of a batch ask at once, and one answer serves them all."""
    with _probe_lock:
        return _describe(served_name(model), server_root(api_base), api_key)


_probe_lock = threading.Lock()


@functools.lru_cache(maxsize=64)
def _describe(name: str, root: str, api_key: str | None) -> Served:
    facts: dict[str, Any] = {"names": []}
    try:
        # each kind of server answers its own routes and 404s the others'
        _openai_models(facts, name, _get(f"{root}/v1/models", api_key))
        _llama_cpp_props(facts, _get(f"{root}/props", api_key))
        _lm_studio(facts, name, _get(f"{root}/api/v0/models", api_key))
        _ollama(facts, _post(f"{root}/api/show", {"model": name}, api_key))
        if not facts.get("runtime"):
            count = _post(f"{root}/extras/tokenize/count", {"model": name, "input": "x"}, api_key)
            if isinstance(count, dict) and "count" in count:  # a route only llama-cpp-python has
                facts["runtime"] = "llama-cpp-python"
    except OSError:  # unreachable (refused, timed out): what was learnt so far is all there is
        pass
    names = tuple(dict.fromkeys(n for n in facts["names"] if isinstance(n, str) and n))
    return Served(
        facts.get("params"),
        facts.get("source", ""),
        names,
        facts.get("window"),
        facts.get("runtime", ""),
    )


def _entry(data: Any, name: str) -> dict[str, Any] | None:
    """The model's entry of a model list: the one with its id, else the only one served."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    items = [i for i in items if isinstance(i, dict)]
    match = [i for i in items if i.get("id") == name]
    return match[0] if match else (items[0] if len(items) == 1 else None)


def _set(facts: dict[str, Any], key: str, value: Any, source: str = "") -> None:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number and number > 0 and facts.get(key) is None:
        facts[key] = int(number) if key == "window" else float(number)
        if source:
            facts["source"] = source


def _openai_models(facts: dict[str, Any], name: str, data: Any) -> None:
    entry = _entry(data, name)
    if entry is None:
        return
    facts["names"] += [entry.get("id"), entry.get("root")]  # vLLM: root is the repository
    facts["runtime"] = {"llamacpp": "llama.cpp", "vllm": "vLLM"}.get(str(entry.get("owned_by")))
    meta = _dict(entry.get("meta"))
    _set(facts, "params", meta.get("n_params"), "llama.cpp server, /v1/models meta.n_params")
    _set(facts, "window", entry.get("max_model_len"))  # vLLM
    _set(facts, "window", meta.get("n_ctx_train"))


def _llama_cpp_props(facts: dict[str, Any], data: Any) -> None:
    if not isinstance(data, dict):
        return
    facts["names"].append(data.get("model_path"))
    facts["runtime"] = "llama.cpp"
    settings = data.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if isinstance(n_ctx, int) and n_ctx > 0:
        facts["window"] = n_ctx  # what a request may use, not the window the model trained with


def _lm_studio(facts: dict[str, Any], name: str, data: Any) -> None:
    entry = _entry(data, name)
    if entry is not None:
        facts["names"].append(entry.get("id"))
        facts["runtime"] = "LM Studio"
        _set(facts, "window", entry.get("loaded_context_length"))
        _set(facts, "window", entry.get("max_context_length"))


def _ollama(facts: dict[str, Any], data: Any) -> None:
    if not isinstance(data, dict):
        return
    facts["runtime"] = "Ollama"
    info = _dict(data.get("model_info"))
    _set(facts, "params", info.get("general.parameter_count"), "Ollama, /api/show parameter count")
    details = _dict(data.get("details"))
    size = details.get("parameter_size")  # "1.5B"
    if isinstance(size, str):
        _set(facts, "params", params_in_name(size.lower()), "Ollama, /api/show parameter_size")
    windows = [v for k, v in info.items() if k.endswith(".context_length")]
    _set(facts, "window", windows[0] if windows else None)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _get(url: str, api_key: str | None) -> Any:
    return _fetch(urllib.request.Request(url, headers=_headers(api_key)))


def _post(url: str, body: dict[str, Any], api_key: str | None) -> Any:
    headers = {**_headers(api_key), "Content-Type": "application/json"}
    return _fetch(urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST"))


def _headers(api_key: str | None) -> dict[str, str]:
    # the key the user gave for this server (vLLM and LM Studio may require it on every route)
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _fetch(request: urllib.request.Request) -> Any:
    """The JSON body, or None for an HTTP error or a body that is not JSON (a route this kind
    of server does not have). Connection failures raise OSError: nothing more to ask."""
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            return json.loads(response.read(1_000_000) or b"null")
    except (urllib.error.HTTPError, ValueError):
        return None
