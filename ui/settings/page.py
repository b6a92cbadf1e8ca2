"""The Settings page: model presets per provider, keys for this session only, Ollama and
OpenAI-compatible servers, local GGUF files, and a Test connection button.

Keys typed here live in this browser session's state and are passed to model calls only; the
Run and Evaluate pages and the Fork panel read them, and the models added here, through
`ui.model_picker`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import streamlit as st

from rlm_core.errors import ModelError
from rlm_core.models import local as local_model
from rlm_core.models.resolve import check_model, model_for
from rlm_core.otel_map import ENDPOINT_ENV, OtlpTarget, shown
from ui.common import OTLP_ENDPOINT
from ui.model_picker import KEYS, PROVIDERS, SAVED, save_model, saved_models
from ui.safe import md

OLLAMA_DEFAULT = "http://localhost:11434"
SERVER_DEFAULT = "http://127.0.0.1:8000/v1"
PING = [{"role": "user", "content": "Reply with the single word OK."}]
HTTP_TIMEOUT_S = 5.0


# ---- plain functions (no Streamlit): what the page does ----------------------------------


@dataclass
class Probe:
    ok: bool
    message: str
    latency_s: float | None = None


def check_connection(
    model: str, api_base: str | None = None, api_key: str | None = None, timeout_s: float = 30
) -> Probe:
    """One tiny call to the model: its latency, or the reason it failed in one line."""
    try:
        check_model(model, api_base=api_base, api_key=api_key)
        if local_model.is_local(model):
            local_model.load(model)
        client = model_for(
            model, api_base=api_base, api_key=api_key, retries=0, timeout_s=timeout_s
        )
        started = time.monotonic()
        done = client.complete(PING, max_output_tokens=8)
    except ModelError as exc:
        return Probe(False, str(exc))
    latency = time.monotonic() - started
    reply = " ".join(done.text.split())[:40] or "(empty reply)"
    return Probe(True, f"{model} answered in {latency:.2f} s: {reply}", latency)


def _get_json(url: str, api_key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return json.loads(response.read().decode("utf-8", "replace"))


def _list_error(where: str, exc: Exception) -> ModelError:
    if isinstance(exc, urllib.error.HTTPError):
        return ModelError(f"{where} answered HTTP {exc.code} when asked for its models.")
    if isinstance(exc, urllib.error.URLError | OSError):
        reason = getattr(exc, "reason", exc)
        return ModelError(f"Cannot reach {where}: {reason}.")
    return ModelError(f"{where} did not return a model list ({type(exc).__name__}).")


def ollama_models(api_base: str) -> list[str]:
    """Installed models of a running Ollama, as litellm names (`ollama_chat/<name>`)."""
    base = api_base.rstrip("/")
    try:
        data = _get_json(f"{base}/api/tags")
        names = [str(m["name"]) for m in data.get("models", [])]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise _list_error(f"Ollama at {base}", e) from None
    return [f"ollama_chat/{n}" for n in sorted(names)]


def server_models(api_base: str, api_key: str | None = None) -> list[str]:
    """Models an OpenAI-compatible server serves, as litellm names (`openai/<id>`)."""
    base = api_base.rstrip("/")
    try:
        data = _get_json(f"{base}/models", api_key)
        names = [str(m["id"]) for m in data.get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise _list_error(base, e) from None
    return [f"openai/{n}" for n in sorted(names)]


# ---- the page ------------------------------------------------------------------------------


def _report(slot: str) -> None:
    probe = st.session_state.get(slot)
    if isinstance(probe, Probe):
        (st.success if probe.ok else st.error)(md(probe.message))  # the model's own words


def _test_and_save(slot: str, model: str, api_base: str | None, api_key: str | None) -> None:
    with st.spinner(f"Calling {model}…"):
        st.session_state[slot] = check_connection(model, api_base, api_key)
    if st.session_state[slot].ok:
        save_model(model, api_base)


def _hosted() -> None:
    st.caption(
        "Keys are read from the provider's environment variable. A key typed here is kept in "
        "this browser session only: it is never saved, logged or given to the REPL sandbox."
    )
    name = st.selectbox("Provider", list(PROVIDERS), key="set_provider")
    env, presets = PROVIDERS[name]
    keys: dict[str, str] = st.session_state.setdefault(KEYS, {})
    if os.environ.get(env):
        st.caption(f"`{env}` is set in the environment.")
    typed = st.text_input(
        f"{env} for this session", type="password", key=f"set_key_{env}", value=keys.get(env, "")
    )
    if typed.strip():
        keys[env] = typed.strip()
    else:
        keys.pop(env, None)
    model = st.selectbox("Model", presets, key="set_hosted_model")
    if st.button("Test connection", key="test_hosted"):
        _test_and_save("probe_hosted", model, None, keys.get(env))
    _report("probe_hosted")


def _ollama() -> None:
    base = st.text_input(
        "Ollama address", value=os.environ.get("OLLAMA_API_BASE", OLLAMA_DEFAULT), key="set_ollama"
    ).strip()
    if st.button("List installed models", key="list_ollama"):
        try:
            st.session_state["ollama_models"] = ollama_models(base)
        except ModelError as exc:
            st.session_state["ollama_models"] = []
            st.error(md(exc))
    found = st.session_state.get("ollama_models") or []
    if found:
        model = st.selectbox("Installed model", found, key="set_ollama_model")
    else:
        model = (
            "ollama_chat/"
            + st.text_input(
                "Model name (as in `ollama list`)",
                key="set_ollama_name",
                placeholder="qwen2.5-coder",
            ).strip()
        )
    if st.button("Test connection", key="test_ollama", disabled=model == "ollama_chat/"):
        _test_and_save("probe_ollama", model, base, None)
    _report("probe_ollama")


def _server() -> None:
    st.caption("vLLM, llama.cpp server, LM Studio: anything serving /v1/chat/completions.")
    base = st.text_input("API base", value=SERVER_DEFAULT, key="set_server_base").strip()
    key = st.text_input("API key (if the server wants one)", type="password", key="set_server_key")
    if st.button("List served models", key="list_server"):
        try:
            st.session_state["server_models"] = server_models(base, key.strip() or None)
        except ModelError as exc:
            st.session_state["server_models"] = []
            st.error(md(exc))
    if found := st.session_state.get("server_models"):
        st.caption("Served: " + md(", ".join(found)))  # names the server chose
    name = st.text_input("Model name", key="set_server_model", placeholder="my-model").strip()
    model = name if name.startswith(("openai/", "hosted_vllm/")) else f"openai/{name}"
    if st.button("Test connection", key="test_server", disabled=not name):
        _test_and_save("probe_server", model, base, key.strip() or None)
    _report("probe_server")


def _local() -> None:
    st.caption(
        "A GGUF file run inside this process by llama-cpp-python: loaded once, one call at a "
        "time, context window read from the file. See the README for how to get a model file."
    )
    if not local_model.available():
        st.warning(local_model.INSTALL_HINT)
    path = st.text_input("Path to a .gguf file", key="set_gguf").strip()
    model = f"local/{path}"
    if st.button("Test connection", key="test_local", disabled=not path):
        _test_and_save("probe_local", model, None, None)
    _report("probe_local")


def _traces_out() -> None:
    """The OTLP endpoint this session's runs send their spans to, and what was lost so far."""
    st.subheader("Share traces (OTLP)")
    typed = st.text_input(
        "OTLP/HTTP endpoint",
        value=st.session_state.get(OTLP_ENDPOINT, ""),
        key="set_otlp",
        placeholder="http://127.0.0.1:6006 (Phoenix), or your Langfuse's OTLP URL",
        help="Runs and evaluations started from this session send each node as a span while "
        f"they go. Empty: ${ENDPOINT_ENV} of the server, if set. Headers (such as a Langfuse "
        "key) come from the server's OTEL_EXPORTER_OTLP_HEADERS.",
    ).strip()
    try:
        target = OtlpTarget.given(typed or None)
    except ValueError as exc:
        st.error(md(exc))
        return
    st.session_state[OTLP_ENDPOINT] = typed
    if target is None:
        st.caption("Traces stay on this machine.")
        return
    from rlm_core.otlp import export_to  # the OpenTelemetry SDK, once an endpoint is set

    export = export_to(target)
    tally = export.totals()
    st.caption(
        md(
            f"Spans go to {shown(export.url)}. Since the server started: {tally.sent} sent, "
            f"{tally.delivered} delivered, {tally.failed} lost (the collector refused them or "
            f"did not answer), {tally.unconfirmed} waiting."
        )
    )


def render() -> None:
    tabs = st.tabs(["Hosted providers", "Ollama", "OpenAI-compatible server", "Local GGUF file"])
    for tab, part in zip(tabs, (_hosted, _ollama, _server, _local), strict=True):
        with tab:
            part()
    _traces_out()
    st.subheader("Models for this session")
    models = saved_models()
    if not models:
        st.caption("A model that passes Test connection is added to the Run and Evaluate pages.")
        return
    st.dataframe(
        [{"model": m, "API base": b or "provider default"} for m, b in models.items()],
        hide_index=True,
    )
    if st.button("Forget these models", key="forget_models"):
        st.session_state[SAVED] = {}
        st.rerun()
