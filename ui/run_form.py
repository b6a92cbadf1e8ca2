"""The Run page's inputs: context (example, upload or paste), question, models and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.demo import DEMO_MODELS
from rlm_core.examples import EXAMPLES
from rlm_core.ingest import Context, IngestError, context_from_files
from ui.common import CUSTOM, ROOT_PRESETS, SUB_PRESETS

SOURCES = ("Example document", "Upload files", "Paste text")


@dataclass
class ContextChoice:
    value: Any
    label: str
    chars: int
    questions: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()


@st.cache_data(show_spinner="Generating the example document…", max_entries=4)
def _example(name: str) -> str:
    example = EXAMPLES[name]
    return example.build(example.size)


def context_picker() -> ContextChoice | None:
    source = st.radio("Context", SOURCES, horizontal=True, key="ctx_source")
    if source == "Example document":
        name = st.selectbox(
            "Example", list(EXAMPLES), format_func=lambda k: EXAMPLES[k].title, key="ctx_example"
        )
        example = EXAMPLES[name]
        st.caption(example.description)
        text = _example(name)
        return ContextChoice(
            text, example.title, len(text), example.questions, example.answers(text)
        )
    if source == "Upload files":
        files = st.file_uploader(
            "Files (text, Markdown, code, CSV, JSON, PDF, DOCX, HTML); several become a "
            "dict context {file name: text}",
            accept_multiple_files=True,
            key="ctx_files",
        )
        if not files:
            st.info("Choose one or more files to use as the context.")
            return None
        try:
            ctx = _ingest([(f.name, f.getvalue()) for f in files])
        except IngestError as exc:
            st.error(str(exc))
            return None
        for note in ctx.notes:
            st.caption(note)
        label = files[0].name if len(files) == 1 else f"{len(files)} files"
        return ContextChoice(ctx.value, label, ctx.chars)
    text = st.text_area("Paste the context", height=200, key="ctx_paste")
    if not text.strip():
        st.info("Paste some text to use as the context.")
        return None
    return ContextChoice(text, "pasted text", len(text))


def _ingest(files: list[tuple[str, bytes]]) -> Context:
    # keyed by names and sizes: re-reading a big upload on every rerun would be slow
    key = tuple((name, len(data)) for name, data in files)
    cache = st.session_state.setdefault("_ingest_cache", {})
    if key not in cache:
        cache.clear()
        with st.spinner("Reading files…"):
            cache[key] = context_from_files(files)
    return cache[key]


def size_line(choice: ContextChoice) -> str:
    return f"{choice.chars:,} characters · about {choice.chars // 4:,} tokens"


def _model_picker(label: str, presets: list[str], key: str) -> str:
    def describe(name: str) -> str:
        return f"{name} — {DEMO_MODELS[name]} (offline)" if name in DEMO_MODELS else name

    choice = st.selectbox(label, [*presets, CUSTOM], format_func=describe, key=key)
    if choice == CUSTOM:
        return st.text_input(
            f"{label}: litellm model name", key=f"{key}_custom", placeholder="provider/model"
        ).strip()
    return str(choice)


def _optional(value: float) -> float | None:
    return value if value > 0 else None


def config_form() -> RLMConfig | None:
    """Models, key and limits; returns None (with the reason shown) when the input is unusable."""
    left, right = st.columns(2)
    with left:
        root = _model_picker("Root model", ROOT_PRESETS, "root_model")
    with right:
        sub = _model_picker("Sub model", SUB_PRESETS, "sub_model")
    with st.expander("Provider settings (API base, key)"):
        api_base = st.text_input(
            "API base (for vLLM, llama.cpp server, LM Studio, Ollama)", key="api_base"
        )
        api_key = st.text_input(
            "API key (kept in this browser session only; never saved)",
            type="password",
            key="api_key",
        )
    with st.expander("Limits"):
        c1, c2, c3 = st.columns(3)
        iterations = c1.number_input("Max iterations", 1, 200, 30, key="lim_iter")
        depth = c2.number_input("Max depth", 0, 5, 1, key="lim_depth")
        calls = c3.number_input("Max model calls (0 = none)", 0, 100_000, 0, key="lim_calls")
        tokens = c1.number_input("Max tokens (0 = none)", 0, 100_000_000, 0, key="lim_tokens")
        cost = c2.number_input("Max cost in USD (0 = none)", 0.0, 10_000.0, 0.0, key="lim_cost")
        timeout = c3.number_input("Run timeout in s (0 = none)", 0, 86_400, 0, key="lim_time")
        cell = c1.number_input("Cell timeout in s", 1, 3_600, 60, key="lim_cell")
    if not root or not sub:
        st.warning("Type a model name for the root and the sub model.")
        return None
    try:
        return RLMConfig(
            root_model=root,
            sub_model=sub,
            api_base=api_base.strip() or None,
            api_key=api_key.strip() or None,
            max_iterations=int(iterations),
            max_depth=int(depth),
            max_llm_calls=int(calls) or None,
            max_tokens=int(tokens) or None,
            max_cost_usd=_optional(float(cost)),
            timeout_s=_optional(float(timeout)),
            cell_timeout_s=float(cell),
        )
    except ValueError as exc:
        st.error(str(exc))
        return None
