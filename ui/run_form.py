"""The Run page's inputs: context (example, upload or paste), question, models and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.context import size_of
from rlm_core.evaluate.examples import EXAMPLES
from rlm_core.evaluate.scoring import score
from rlm_core.ingest import Context, context_from_files
from rlm_core.models import local as local_model
from rlm_core.models.scripted import DEMO_MODELS
from rlm_core.readers import Data, IngestError
from ui.common import CUSTOM, ROOT_PRESETS, SUB_PRESETS
from ui.sampling import sampling_inputs
from ui.settings_page import saved_api_base, saved_models, session_key

SOURCES = ("Example document", "Upload files", "Upload a folder", "Paste text")
MAX_UPLOAD_MB = 1024


@dataclass
class ContextChoice:
    value: Any
    label: str
    chars: int
    questions: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    scoring: tuple[str, ...] = ()


def verdict(choice: ContextChoice, question: str, answer: str | None) -> str | None:
    """'correct'/'incorrect' (with the score) when the question is one with a known answer."""
    if question.strip() not in choice.questions:
        return None
    index = choice.questions.index(question.strip())
    kind = choice.scoring[index] if index < len(choice.scoring) else "exact"
    points = score(kind, answer, choice.answers[index])
    word = "correct" if points >= 0.999 else "partly correct" if points > 0 else "incorrect"
    return f"{word} (score {points:.2f}; expected: {choice.answers[index][:200]})"


@st.cache_data(show_spinner="Generating the example document…", max_entries=4)
def _example(name: str) -> Any:
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
        value = _example(name)
        return ContextChoice(
            value,
            example.title,
            size_of(value),
            example.questions,
            example.answers(value),
            example.scoring,
        )
    if source in ("Upload files", "Upload a folder"):
        folder = source == "Upload a folder"
        files = st.file_uploader(
            "A folder: every readable file becomes {path: text}; binary files are skipped"
            if folder
            else "Files (text, Markdown, code, CSV, JSON, PDF, DOCX, HTML, or a ZIP of them); "
            "several become a dict context {file name: text}",
            accept_multiple_files="directory" if folder else True,
            max_upload_size=MAX_UPLOAD_MB,
            key="ctx_folder" if folder else "ctx_files",
        )
        if not files:
            st.info("Choose a folder." if folder else "Choose files (or a ZIP) as the context.")
            return None
        try:
            # getbuffer() shares the upload's memory; getvalue() would copy up to 1 GB
            ctx = _ingest([(f.name, f.getbuffer()) for f in files])
        except IngestError as exc:
            st.error(str(exc))
            return None
        for note in ctx.notes:
            st.caption(note)
        label = files[0].name if len(files) == 1 else f"{len(files)} files"
        if isinstance(ctx.value, dict) and len(files) == 1:
            label = f"{files[0].name}: {len(ctx.value)} files"
        return ContextChoice(ctx.value, label, ctx.chars)
    text = st.text_area("Paste the context", height=200, key="ctx_paste")
    if not text.strip():
        st.info("Paste some text to use as the context.")
        return None
    return ContextChoice(text, "pasted text", len(text))


def _ingest(files: list[tuple[str, Data]]) -> Context:
    # keyed by names and sizes: re-reading a big upload on every rerun would be slow
    key = tuple((name, len(data)) for name, data in files)
    cache = st.session_state.setdefault("_ingest_cache", {})
    if key not in cache:
        cache.clear()
        bar = st.progress(0.0, text="Reading files…")

        def progress(fraction: float, what: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"Reading {what}…"[:120])

        try:
            cache[key] = context_from_files(files, progress)
        finally:
            bar.empty()
    return cache[key]


def size_line(choice: ContextChoice) -> str:
    return f"{choice.chars:,} characters · about {choice.chars // 4:,} tokens"


def _model_picker(label: str, presets: list[str], key: str) -> str:
    def describe(name: str) -> str:
        return f"{name} — {DEMO_MODELS[name]} (offline)" if name in DEMO_MODELS else name

    options = list(dict.fromkeys([*presets, *saved_models()]))
    choice = st.selectbox(label, [*options, CUSTOM], format_func=describe, key=key)
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
    with st.expander("Sampling (temperature, seed)"):
        sampling = sampling_inputs("run")
    if not root or not sub:
        st.warning("Type a model name for the root and the sub model.")
        return None
    if not _local_ready(root, sub):
        return None
    try:
        return RLMConfig(
            root_model=root,
            sub_model=sub,
            # empty fields fall back to what the Settings page set up for this session
            api_base=api_base.strip() or saved_api_base(root) or saved_api_base(sub),
            api_key=api_key.strip() or session_key(root) or session_key(sub),
            max_iterations=int(iterations),
            max_depth=int(depth),
            max_llm_calls=int(calls) or None,
            max_tokens=int(tokens) or None,
            max_cost_usd=_optional(float(cost)),
            timeout_s=_optional(float(timeout)),
            cell_timeout_s=float(cell),
            **sampling,
        )
    except ValueError as exc:
        st.error(str(exc))
        return None


def _local_ready(*models: str) -> bool:
    """`local/` models need their provider registered (and llama-cpp-python) before a run."""
    for model in models:
        if not local_model.is_local(model):
            continue
        if not local_model.available():
            st.error(local_model.INSTALL_HINT)
            return False
        if not local_model.model_path(model).is_file():
            st.error(f"No model file at {local_model.model_path(model)}.")
            return False
    return True
