"""`prompt="auto"` for served models: what llama.cpp's server, llama-cpp-python, LM Studio,
Ollama and vLLM say about the model, then its name, then the full prompt. Each server is the
fake OpenAI-compatible server answering that server's own routes the way it does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import repl, stored
from fake_openai import FakeOpenAIServer, by_model

from rlm_core import RLM
from rlm_core.engine.prompts import PROMPT_NAME, SMALL_PROMPT_NAME, choose_prompt
from rlm_core.models.served import describe, params_in_name

SERVERS: dict[str, dict[str, Any]] = {
    # llama.cpp's llama-server: n_params in /v1/models, the file and slot window in /props
    "llama.cpp": {
        "/v1/models": {
            "object": "list",
            "data": [
                {
                    "id": "root",
                    "owned_by": "llamacpp",
                    "meta": {"n_params": 1_543_714_304, "n_ctx_train": 32_768},
                }
            ],
        },
        "/props": {
            "model_path": "/models/root.gguf",
            "default_generation_settings": {"n_ctx": 8192},
        },
    },
    # llama-cpp-python's server: only the alias; its own tokenizer route gives it away
    "llama-cpp-python": {
        "/v1/models": {"object": "list", "data": [{"id": "root", "owned_by": "me"}]},
        "/extras/tokenize/count": {"count": 1},
    },
    # LM Studio: the id names the size; /api/v0/models adds the window
    "LM Studio": {
        "/v1/models": {"data": [{"id": "qwen2.5-coder-1.5b-instruct", "object": "model"}]},
        "/api/v0/models": {
            "data": [
                {
                    "id": "qwen2.5-coder-1.5b-instruct",
                    "arch": "qwen2",
                    "quantization": "Q4_K_M",
                    "max_context_length": 32_768,
                }
            ]
        },
    },
    # Ollama: /api/show has the parameter count and the context length
    "Ollama": {
        "/v1/models": {"data": [{"id": "root", "owned_by": "library"}]},
        "/api/show": {
            "details": {"parameter_size": "3.2B", "family": "llama"},
            "model_info": {
                "general.parameter_count": 3_212_749_888,
                "llama.context_length": 131_072,
            },
        },
    },
    # vLLM: the repository as root and the window as max_model_len
    "vLLM": {
        "/v1/models": {
            "data": [
                {
                    "id": "root",
                    "owned_by": "vllm",
                    "root": "Qwen/Qwen2.5-Coder-7B-Instruct",
                    "max_model_len": 16_384,
                }
            ]
        }
    },
    "vLLM, a 70B": {
        "/v1/models": {
            "data": [
                {"id": "root", "owned_by": "vllm", "root": "meta-llama/Llama-3.3-70B-Instruct"}
            ]
        }
    },
}

EXPECTED = {
    "llama.cpp": (SMALL_PROMPT_NAME, "1.54 B parameters (llama.cpp server", 8192),
    "llama-cpp-python": (SMALL_PROMPT_NAME, "served by llama-cpp-python", None),
    "LM Studio": (SMALL_PROMPT_NAME, "1.5 B parameters (the name 'qwen2.5-coder-1.5b", 32_768),
    "Ollama": (SMALL_PROMPT_NAME, "3.21 B parameters (Ollama", 131_072),
    "vLLM": (SMALL_PROMPT_NAME, "7 B parameters (the name 'Qwen/Qwen2.5-Coder-7B", 16_384),
    "vLLM, a 70B": (PROMPT_NAME, "70 B parameters", None),
}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_auto_takes_what_each_kind_of_server_says_about_its_model(kind: str) -> None:
    with FakeOpenAIServer("ok", routes=SERVERS[kind]) as server:
        name, why = choose_prompt("auto", "openai/root", server.base_url)
        facts = describe("openai/root", server.base_url)
    variant, reason, window = EXPECTED[kind]
    assert (name, facts.window) == (variant, window)
    assert reason in why


def test_a_plain_openai_compatible_server_leaves_it_to_the_name() -> None:
    with FakeOpenAIServer("ok") as server:
        assert choose_prompt("auto", "openai/root", server.base_url)[0] == PROMPT_NAME
        small = choose_prompt("auto", "openai/qwen2.5-coder-1.5b", server.base_url)
        assert small == (
            SMALL_PROMPT_NAME,
            "auto: 1.5 B parameters (the name 'openai/qwen2.5-coder-1.5b')",
        )
    # a server that is down: the name, then the provider
    assert (
        choose_prompt("auto", "openai/llama-3.1-8b", "http://127.0.0.1:9")[0] == SMALL_PROMPT_NAME
    )
    assert choose_prompt("auto", "openai/big", "http://127.0.0.1:9")[0] == PROMPT_NAME
    assert choose_prompt("auto", "local/m.gguf")[0] == SMALL_PROMPT_NAME
    assert choose_prompt("small", "openai/gpt-5") == (SMALL_PROMPT_NAME, "chosen: small")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("openai/qwen2.5-coder-1.5b-instruct", 1.5e9),
        ("ollama_chat/llama3.2:3b", 3e9),
        ("local/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1.5e9),
        ("mixtral-8x7b", 56e9),
        ("smollm2-135m", 135e6),
        ("openai/qwen", None),
        ("openai/gpt-4o", None),
        ("phi3:mini", None),
    ],
)
def test_a_size_in_a_name(name: str, params: float | None) -> None:
    assert params_in_name(name) == params


def test_a_run_records_the_prompt_auto_chose_and_why() -> None:
    routes = {**SERVERS["llama.cpp"]}
    responder = by_model({"root": lambda b: repl("FINAL('x')"), "sub": lambda b: "s"})
    with FakeOpenAIServer(responder, routes=routes) as server:
        result = RLM("openai/root", "openai/sub", server.base_url).run("text", "What?")
        root = server.requests[0]["messages"]
    meta = stored(result.run_id)[1][0].meta
    assert meta["prompt"] == SMALL_PROMPT_NAME
    assert meta["prompt_reason"].startswith("auto: 1.54 B parameters")
    assert root[0]["content"].startswith("You answer a question about a long text")


def test_a_cells_output_is_cut_to_fit_a_small_served_window() -> None:
    """llama.cpp reports a window of 8,192 tokens: a cell's output shown to the root is cut to
    an eighth of it (4,096 characters), and the system prompt says so. llama-cpp-python's
    server reports no window: a small model's is taken to be 8,192 tokens. A model whose window
    nobody reports and that gets the full prompt keeps the configured 20,000."""
    dump = repl("print(context)")
    cases: list[tuple[dict[str, Any], int]] = [
        (SERVERS["llama.cpp"], 4_096),
        (SERVERS["llama-cpp-python"], 4_096),
        ({}, 20_000),
    ]
    for routes, shown in cases:
        answers = iter([dump, "FINAL(1)"])

        def root(body: dict[str, Any], answers: Iterator[str] = answers) -> str:
            return next(answers)

        responder = by_model({"root": root, "sub": lambda b: "s"})
        with FakeOpenAIServer(responder, routes=routes) as server:
            result = RLM("openai/root", "openai/sub", server.base_url).run("x" * 50_000, "What?")
            second = server.requests[1]["messages"]
        assert f"{shown:,} characters" in second[0]["content"]
        feedback = second[-1]["content"]
        assert "x" * shown in feedback and "x" * (shown + 1) not in feedback
        assert f"[+{50_000 - shown:,} more chars]" in feedback
        cell = next(n for n in stored(result.run_id)[1] if n.kind == "code")
        assert len(cell.stdout) > 50_000  # the trace keeps all of it
