"""Keys go only where the user sent them: model code names only the run's models, the
environment's key never goes to a typed API base, and no key is recorded or shown to the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeOpenAIServer, Scripted, by_model, repl, stored

from rlm_core import RLM, TraceStore
from rlm_core.exchange.html import export_html
from rlm_core.exchange.jsonl import export_jsonl
from rlm_core.exchange.otel import export_otel
from rlm_core.models.litellm_client import LOCAL_SERVER_KEY
from ui.settings.page import check_connection

TYPED = "sk-typed-KEY-0123456789"
ENVKEY = "sk-env-KEY-9876543210"


def authorizations(server: FakeOpenAIServer) -> list[str]:
    return [h.get("Authorization", "") for h in server.request_headers]


def test_model_code_cannot_name_a_model_the_user_did_not_enable(fake: Any) -> None:
    # llamafile/ routes to 127.0.0.1:8080, where model code could listen for the key
    code = (
        "for name in ['llamafile/x', 'openai/evil', 'openai/sub']:\n"
        "    try:\n        print(name, llm_query('hi', model=name))\n"
        "    except Exception as exc:\n        print(name, 'ERROR', exc)\n"
        "try:\n    llm_query_batched(['a', 'b'], model='ollama/x')\n"
        "except Exception as exc:\n    print('batch ERROR', exc)"
    )
    result, server, root = fake([repl(code), repl("FINAL('done')")])
    assert result.status == "ok"
    shown = root.seen[1][-1]["content"]
    assert "llamafile/x ERROR" in shown and "not enabled for this run" in shown
    assert "openai/evil ERROR" in shown and "batch ERROR" in shown
    assert "openai/sub sub saw" in shown  # an enabled model still answers
    assert [b["model"] for b in server.requests] == ["root", "sub", "root"]
    _, nodes = stored(result.run_id)
    assert [n.model for n in nodes if n.kind == "llm_query"] == ["openai/sub"]


def test_the_environment_key_never_goes_to_a_typed_api_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENVKEY)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    replies = Scripted([repl("x = llm_query('hi')"), repl("FINAL(x)")])
    with FakeOpenAIServer(by_model({"root": replies, "sub": lambda b: "ok"})) as server:
        result = RLM("openai/root", "openai/sub", server.base_url, retries=0).run("c", "q")
        assert result.status == "ok"
        assert set(authorizations(server)) == {f"Bearer {LOCAL_SERVER_KEY}"}
        # the opt-in: the environment itself pairs its key with this base
        monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
        replies.seen.clear()
        RLM("openai/root", "openai/sub", server.base_url, retries=0).run("c", "q")
        assert authorizations(server)[-1] == f"Bearer {ENVKEY}"


def test_test_connection_does_not_send_the_environment_key_to_a_typed_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENVKEY)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    with FakeOpenAIServer("OK") as server:
        probe = check_connection("openai/fake-model", server.base_url)
        assert probe.ok, probe.message
        assert ENVKEY not in str(server.request_headers)
        check_connection("openai/fake-model", server.base_url, TYPED)
        assert authorizations(server)[-1] == f"Bearer {TYPED}"  # a typed key does go


def test_keys_are_scrubbed_from_everything_traced_or_shown_to_the_model(
    traces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENVKEY)
    # the document holds the environment's key; the provider echoes the typed one
    context = f"config dump: OPENAI_API_KEY={ENVKEY}\n"
    code = (
        "leak = llm_query('echo the key')\n"
        "print(context, leak)\n"
        "both = [context, leak]\n"
        "rlm_query('look', context={'k': context})\n"
        "raise ValueError(leak + context)"
    )
    replies = Scripted([repl(code), repl("FINAL(str(both))")])

    def sub(body: dict[str, Any]) -> str:
        return f"the key is {TYPED}"

    with FakeOpenAIServer(by_model({"root": replies, "sub": sub})) as server:
        rlm = RLM(
            "openai/root", "openai/sub", server.base_url, api_key=TYPED, retries=0, max_iterations=2
        )
        result = rlm.run(context, f"is {TYPED} valid?")
        assert TYPED in str(server.request_headers)  # the provider did get the typed key
    assert result.status == "ok"
    seen = json.dumps(replies.seen)
    assert "***" in seen
    for key in (TYPED, ENVKEY):
        assert key not in seen and key not in str(result.answer)
    store = TraceStore(traces_dir)
    try:
        exports = [
            export_jsonl(store, result.run_id),
            export_html(store, result.run_id),
            json.dumps(export_otel(store, result.run_id)),
        ]
    finally:
        store.close()
    files = [p.read_bytes() for p in traces_dir.rglob("*") if p.is_file()]
    for blob in [e.encode() for e in exports] + files:
        assert TYPED.encode() not in blob and ENVKEY.encode() not in blob
