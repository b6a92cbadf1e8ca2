"""Settings: connection tests against the fake server (ok, 401, unknown model, unreachable),
model lists from Ollama and OpenAI-compatible servers, the page under AppTest, and the local
GGUF provider wired through litellm with a fake `llama_cpp` module (not the real package)."""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from fake_openai import FakeOpenAIServer, FakeReply, Responder, by_model
from streamlit.testing.v1 import AppTest

from rlm_core import RLM
from rlm_core.errors import ModelError
from rlm_core.evaluate.evaluator import DID_NOT_FIT, EvalPlan, Evaluator
from rlm_core.models import local as local_model
from rlm_core.models.facts import context_window
from rlm_core.models.resolve import model_for
from ui.settings.page import check_connection, ollama_models, server_models

PAGE = str(ROOT / "pages" / "5_Settings.py")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    routes: dict[str, Responder] = {
        "good": lambda body: "OK",
        "locked": lambda body: FakeReply(status=401, content="Incorrect API key provided"),
    }
    with FakeOpenAIServer(by_model(routes)) as fake:
        yield fake


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ollama() -> Iterator[str]:
    """A stand-in for a running Ollama: only GET /api/tags."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"models": [{"name": "qwen2.5-coder:1.5b"}, {"name": "llama3"}]})
            self.send_response(200 if self.path == "/api/tags" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ---- connection tests --------------------------------------------------------------------


def test_connection_reports_latency_or_a_clear_error(server: FakeOpenAIServer) -> None:
    ok = check_connection("openai/good", server.base_url, "sk-test")
    assert ok.ok and ok.latency_s is not None and "answered in" in ok.message
    assert server.requests[-1]["max_tokens"] == 8  # one tiny call
    locked = check_connection("openai/locked", server.base_url, "sk-test")
    assert not locked.ok and "Authentication failed" in locked.message and "401" in locked.message
    unknown = check_connection("openai/nosuch", server.base_url, "sk-test")
    assert not unknown.ok and "does not know model openai/nosuch" in unknown.message
    down = check_connection("openai/good", f"http://127.0.0.1:{closed_port()}/v1", "sk-test")
    assert not down.ok and "Cannot reach" in down.message and "connection refused" in down.message


def test_connection_without_a_key_or_with_an_unknown_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    missing = check_connection("anthropic/claude-haiku-4-5")
    assert not missing.ok and "ANTHROPIC_API_KEY" in missing.message
    assert "Unknown model" in check_connection("nosuchprovider/x").message


def test_model_lists(server: FakeOpenAIServer, ollama: str) -> None:
    assert server_models(server.base_url) == ["openai/fake-model"]
    assert ollama_models(ollama) == ["ollama_chat/llama3", "ollama_chat/qwen2.5-coder:1.5b"]
    with pytest.raises(ModelError, match="Cannot reach Ollama"):
        ollama_models(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelError, match="HTTP 404"):
        ollama_models(server.base_url)


# ---- the page ----------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_app")
def test_settings_page_tests_models_and_offers_them_to_the_run_page(
    server: FakeOpenAIServer, ollama: str
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.switch_page("pages/5_Settings.py").run()
    assert not at.exception
    at.text_input(key="set_server_base").set_value(server.base_url).run()
    at.text_input(key="set_server_model").set_value("good").run()
    at.button(key="test_server").click().run()
    assert any("openai/good answered in" in s.value for s in at.success)
    at.text_input(key="set_server_model").set_value("locked").run()
    at.button(key="test_server").click().run()
    assert any("Authentication failed" in e.value for e in at.error)
    at.text_input(key="set_ollama").set_value(ollama).run()
    at.button(key="list_ollama").click().run()
    assert "ollama_chat/llama3" in at.selectbox(key="set_ollama_model").options
    at.text_input(key="set_key_OPENAI_API_KEY").set_value("sk-session-only").run()
    assert at.session_state["settings_keys"] == {"OPENAI_API_KEY": "sk-session-only"}
    assert at.session_state["settings_models"] == {"openai/good": server.base_url}
    assert not at.exception

    at.switch_page("app.py").run()
    assert "openai/good" in at.selectbox(key="root_model").options


@pytest.mark.usefixtures("fresh_app")
def test_local_tab_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # an import of it fails
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert any("llama-cpp-python" in w.value for w in at.warning)
    at.text_input(key="set_gguf").set_value("/models/x.gguf").run()
    at.button(key="test_local").click().run()
    assert any("pip install -r requirements-local.txt" in e.value for e in at.error)


# ---- local GGUF models through a fake llama_cpp --------------------------------------------

FAKE_LLAMA = textwrap.dedent(
    """
    import threading, time

    state = {"loads": 0, "running": 0, "max_running": 0}
    _lock = threading.Lock()

    class Llama:
        def __init__(self, model_path, n_ctx=0, verbose=True, **kwargs):
            if not open(model_path, "rb").read(4) == b"GGUF":
                raise ValueError("not a gguf file")
            state["loads"] += 1
            state["n_threads"] = kwargs.get("n_threads")
            self._n_ctx = n_ctx or 2048  # 0: the training window stored in the file

        def n_ctx(self):
            return self._n_ctx

        def tokenize(self, text, add_bos=True, special=False):
            return text.split()  # one token per word: easy to check

        def create_chat_completion(self, messages, max_tokens=None, temperature=None, **kw):
            state["sampling"] = (temperature, kw.get("seed"))
            with _lock:
                state["running"] += 1
                state["max_running"] = max(state["max_running"], state["running"])
            time.sleep(0.05)
            with _lock:
                state["running"] -= 1
            prompt = messages[-1]["content"]
            if len(prompt.split()) > self._n_ctx:
                raise ValueError("Requested tokens exceed context window")
            text = "The secret code for the vault is 48213." if "vault" in prompt else "NOT FOUND"
            return {"choices": [{"message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}
    """
)


@pytest.fixture
def fake_llama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    (tmp_path / "llama_cpp.py").write_text(FAKE_LLAMA)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    local_model.unload_all()
    fake = importlib.import_module("llama_cpp")  # the fake above, even where the real one is

    yield f"local/{gguf}", fake.state
    local_model.unload_all()
    sys.modules.pop("llama_cpp", None)


def test_local_model_loads_once_serializes_calls_and_reads_its_window(
    fake_llama: tuple[str, Any],
) -> None:
    model, state = fake_llama
    client = model_for(model, retries=0)
    results: list[str] = []

    def call() -> None:
        results.append(client.complete([{"role": "user", "content": "vault?"}]).text)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["The secret code for the vault is 48213."] * 4
    assert state["n_threads"] == len(os.sched_getaffinity(0))  # every core, not llama's half
    model_for(model, temperature=0.2, seed=5).complete([{"role": "user", "content": "x"}])
    assert state["sampling"] == (0.2, 5)
    assert state["loads"] == 1 and state["max_running"] == 1
    assert local_model.context_window(model) == 2048 == context_window(model)
    assert local_model.count_tokens(model, "three small words") == 3
    done = client.complete([{"role": "user", "content": "hi"}])
    assert done.cost_usd == 0.0 and done.tokens_in == 7
    assert check_connection(model).ok


def test_local_model_errors_are_one_line(
    fake_llama: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelError, match="No model file"):
        local_model.load(f"local/{tmp_path}/missing.gguf")
    (tmp_path / "bad.gguf").write_bytes(b"nope")
    with pytest.raises(ModelError, match=r"Could not load bad\.gguf"):
        local_model.load(f"local/{tmp_path}/bad.gguf")
    # and so they reach the user of a run: one line, not retried, no traceback from litellm
    result = RLM(f"local/{tmp_path}/missing.gguf", "demo/sub").run("some text", "What?")
    assert result.status == "error" and result.error is not None
    assert result.error.startswith(f"No model file at {tmp_path}/missing.gguf")
    assert "\n" not in result.error and "Traceback" not in result.error
    assert "retries" not in result.error
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    local_model.unload_all()
    with pytest.raises(ModelError, match=r"requirements-local\.txt"):
        local_model.load(fake_llama[0])


def test_local_model_as_sub_model_and_as_plain_baseline(fake_llama: tuple[str, Any]) -> None:
    model = fake_llama[0]
    result = RLM("demo/root", model, max_llm_calls=40).run(
        "Filler. " * 200 + "The secret code for the vault is 48213. " + "More filler. " * 200,
        "What is the secret code for the vault?",
    )
    assert result.status == "ok" and "48213" in str(result.answer)
    plan = EvalPlan(("needle",), (1_000, 30_000), ((model, model),), methods=("base",))
    rows = Evaluator(plan, None).run()
    # the window (2,048 tokens) is checked with the model's own tokenizer
    assert [r.status for r in rows] == ["ok", DID_NOT_FIT]
    assert rows[0].score == 1.0
