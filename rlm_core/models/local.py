"""`local/<path-to.gguf>`: a GGUF model run in-process by llama-cpp-python (requirements-local.txt).

Each file is loaded once and shared; calls to it are serialized (a llama.cpp context serves one
request at a time); the context window comes from the file and tokens are counted with the
model's own tokenizer. llama_cpp is imported only when a `local/` model is first used.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from rlm_core.errors import ModelError
from rlm_core.types import Completion

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
        # llama.cpp's default is half the cores: on 2 cores one thread, half the speed
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
        try:
            llm = module.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"Could not load {path.name} as a GGUF model: {exc}") from None
        _loaded[key] = _Loaded(llm)
        return _loaded[key]


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
    seed: int | None = None,
) -> dict[str, Any]:
    """One chat completion as an OpenAI-style dict; waits for any call already running."""
    loaded = load(model)
    kwargs: dict[str, Any] = {"messages": messages}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if temperature is not None:
        kwargs["temperature"] = temperature
    if seed is not None:
        kwargs["seed"] = seed
    with loaded.lock:
        try:
            out: dict[str, Any] = loaded.llm.create_chat_completion(**kwargs)
        except ValueError as exc:  # llama.cpp's "Requested tokens exceed context window"
            raise ModelError(
                f"The prompt is too long for the context window of {model}: {exc}"
            ) from None
        return out


class LocalModel:
    """A `local/` model: free (it runs here), serialized per file, loaded on its first call."""

    def __init__(
        self, name: str, *, temperature: float | None = None, seed: int | None = None
    ) -> None:
        self.name = name
        self.temperature = temperature
        self.seed = seed

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        # llama.cpp cannot be interrupted mid-answer: a Stop takes effect before the call
        if cancel is not None and cancel.is_set():
            raise ModelError(f"The call to {self.name} was not started: the run was stopped.")
        started = time.monotonic()
        out = chat(self.name, list(messages), max_output_tokens, self.temperature, self.seed)
        choice = (out.get("choices") or [{}])[0]
        usage = out.get("usage") or {}
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            model=self.name,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            cost_usd=0.0,
            latency_s=time.monotonic() - started,
            finish_reason=choice.get("finish_reason") or "stop",
        )


def loaded_window(model: str) -> int | None:
    """The window of a file already loaded, without loading it."""
    loaded = _loaded.get(str(model_path(model).resolve()))
    return int(loaded.llm.n_ctx()) if loaded else None


def unload_all() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _load_lock:
        _loaded.clear()
