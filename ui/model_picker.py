"""Choosing a model in a form: presets, the models and keys set up on the Settings page for this
browser session, and the picker the Run page draws.

Keys typed on the Settings page live in this browser session's state and are passed to model
calls only; `session_key` never reads an environment key (litellm does that itself).
"""

from __future__ import annotations

import streamlit as st

from rlm_core.config import settings
from rlm_core.models import local as local_model
from rlm_core.models.scripted import DEMO_MODELS, is_demo

ROOT_PRESETS = [
    "demo/root",
    "demo/recursive",
    "openai/gpt-5-mini",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "ollama_chat/qwen2.5-coder",
]
SUB_PRESETS = [
    "demo/sub",
    "openai/gpt-5-nano",
    "openai/gpt-4o-mini",
    "anthropic/claude-haiku-4-5",
    "ollama_chat/qwen2.5-coder",
]
PROVIDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    # provider: (the environment variable of its key, its preset models)
    "OpenAI": ("OPENAI_API_KEY", ("openai/gpt-5-mini", "openai/gpt-5-nano", "openai/gpt-4o-mini")),
    "Anthropic": (
        "ANTHROPIC_API_KEY",
        ("anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"),
    ),
    "Google Gemini": ("GEMINI_API_KEY", ("gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro")),
    "OpenRouter": ("OPENROUTER_API_KEY", ("openrouter/openai/gpt-4o-mini",)),
    "Mistral": ("MISTRAL_API_KEY", ("mistral/mistral-small-latest",)),
    "Groq": ("GROQ_API_KEY", ("groq/llama-3.3-70b-versatile",)),
}
CUSTOM = "Other (type a litellm model name)…"
CHILD_ROOT_DEFAULT = "default: the sub model (under demo/recursive: demo/recursive)"
"""The child root option that leaves `child_root_model` unset (see engine.run.child_root_model)."""
SAVED = "settings_models"
"""Session: {model: api_base or None} of the models that passed Test connection."""
KEYS = "settings_keys"
"""Session: {environment variable name: key typed on the Settings page}."""


def provider_env(model: str) -> str | None:
    prefix = model.split("/", 1)[0]
    for env, models in PROVIDERS.values():
        if any(m.split("/", 1)[0] == prefix for m in models):
            return env
    return None


def saved_models() -> dict[str, str | None]:
    """Models added on the Settings page in this session: {model: api_base or None}."""
    return dict(st.session_state.get(SAVED, {}))


def save_model(model: str, api_base: str | None) -> None:
    models = saved_models()
    models[model] = api_base or None
    st.session_state[SAVED] = models


def session_key(*models: str, api_base: str | None = None) -> str | None:
    """A key typed on the Settings page for the models' hosted provider (never an environment
    key).

    A run sends its one key to all of its models, so it is used only when every model that
    needs a key is of that one provider, and never with an API base: it was given for the
    provider's own address, not for a server typed elsewhere.
    """
    keyed = [m for m in models if not is_demo(m) and not local_model.is_local(m)]
    envs = {provider_env(m) for m in keyed}
    if api_base or len(envs) != 1 or None in envs:
        return None
    return st.session_state.get(KEYS, {}).get(envs.pop())


def saved_api_base(model: str) -> str | None:
    return saved_models().get(model)


def model_picker(label: str, presets: list[str], key: str, help: str | None = None) -> str:
    """A select box of the presets and this session's saved models, plus a text input for any
    litellm name; returns the name ('' while none is typed)."""

    def describe(name: str) -> str:
        return f"{name} — {DEMO_MODELS[name]} (offline)" if name in DEMO_MODELS else name

    options = list(dict.fromkeys([*presets, *saved_models()]))
    choice = st.selectbox(label, [*options, CUSTOM], format_func=describe, key=key, help=help)
    if choice == CUSTOM:
        return st.text_input(
            f"{label}: litellm model name", key=f"{key}_custom", placeholder="provider/model"
        ).strip()
    return str(choice)


def child_root_picker(key: str) -> str | None:
    """The root model of child RLMs: a name, None for the default, '' while none is typed."""
    spec = next(s for s in settings() if s.name == "child_root_model")
    chosen = model_picker(spec.label, [CHILD_ROOT_DEFAULT, *ROOT_PRESETS], key, help=spec.help)
    return None if chosen == CHILD_ROOT_DEFAULT else chosen
