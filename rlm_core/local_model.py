"""`local/<path-to.gguf>`: a GGUF model run in-process by llama-cpp-python (requirements-local.txt).

Each file is loaded once and shared; calls to it are serialized (a llama.cpp context serves one
request at a time); the context window comes from the file and tokens are counted with the
model's own tokenizer. llama_cpp is imported only when a `local/` model is first used.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from rlm_core.types import ModelError

PREFIX = "local/"
INSTALL_HINT = (
    "local/ models need llama-cpp-python: pip install -r requirements-local.txt "
    "(it compiles llama.cpp, about 15 minutes on 2 cores)"
)


class _Loaded:
    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.lock = threading.Lock()


_loaded: dict[str, _Loaded] = {}
_load_lock = threading.Lock()
_registered: set[int] = set()


def is_local(model: str) -> bool:
    return model.startswith(PREFIX)


def model_path(model: str) -> Path:
    return Path(model[len(PREFIX) :]).expanduser()


def llama_cpp() -> ModuleType:
    try:
        import llama_cpp as module
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
    return module


def available() -> bool:
    try:
        llama_cpp()
    except ModelError:
        return False
    return True


def load(model: str) -> _Loaded:
    """The shared llama.cpp instance for this file, loaded on first use."""
    path = model_path(model)
    key = str(path.resolve())
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        module = llama_cpp()
        if not path.is_file():
            raise ModelError(f"No model file at {path} (model {model}); give the path of a .gguf.")
        # 0 means the window the model was trained with, read from the file's metadata
        n_ctx = int(os.environ.get("RLM_LOCAL_N_CTX") or 0)
        try:
            llm = module.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"Could not load {path.name} as a GGUF model: {exc}") from None
        _loaded[key] = _Loaded(llm)
        _price_as_free(model, int(llm.n_ctx()))
        return _loaded[key]


def _price_as_free(model: str, window: int) -> None:
    # known to cost nothing (it runs here), and the engine reads the sub model's window from
    # litellm's table
    from rlm_core.models import load_litellm

    load_litellm().register_model(
        {
            model: {
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "litellm_provider": "local",
                "mode": "chat",
                "max_input_tokens": window,
            }
        }
    )


def context_window(model: str) -> int:
    return int(load(model).llm.n_ctx())


def count_tokens(model: str, text: str) -> int:
    loaded = load(model)
    with loaded.lock:
        return len(loaded.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def chat(
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """One chat completion as an OpenAI-style dict; waits for any call already running."""
    loaded = load(model)
    kwargs: dict[str, Any] = {"messages": messages}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if temperature is not None:
        kwargs["temperature"] = temperature
    with loaded.lock:
        try:
            out: dict[str, Any] = loaded.llm.create_chat_completion(**kwargs)
        except ValueError as exc:  # llama.cpp's "Requested tokens exceed context window"
            raise ModelError(
                f"The prompt is too long for the context window of {model}: {exc}"
            ) from None
        return out


def register(litellm: Any) -> None:
    """Make `local/<path>` a litellm provider (idempotent for one litellm module)."""
    if id(litellm) in _registered:
        return
    from litellm import CustomLLM, ModelResponse

    def respond(model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
        params = kwargs.get("optional_params") or {}
        full = model if is_local(model) else PREFIX + model
        started = time.monotonic()
        out = chat(full, messages, params.get("max_tokens"), params.get("temperature"))
        choice = (out.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = out.get("usage") or {}
        return ModelResponse(
            model=full,
            choices=[
                {
                    "message": {"role": "assistant", "content": message.get("content") or ""},
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
            usage={
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
                "total_tokens": int(usage.get("total_tokens") or 0),
            },
            response_ms=(time.monotonic() - started) * 1000,
        )

    class LocalLLM(CustomLLM):
        def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
            return respond(model, messages, k)

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Any:
            return await asyncio.to_thread(respond, model, messages, k)

    providers = [p for p in litellm.custom_provider_map if p.get("provider") != "local"]
    litellm.custom_provider_map = [*providers, {"provider": "local", "custom_handler": LocalLLM()}]
    setup = getattr(getattr(litellm, "utils", None), "custom_llm_setup", None)
    if callable(setup):
        setup()  # so get_llm_provider (check_model) knows `local/` before the first call
    _registered.add(id(litellm))


def ensure_registered() -> None:
    from rlm_core.models import load_litellm

    register(load_litellm())


def unload_all() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _load_lock:
        _loaded.clear()
