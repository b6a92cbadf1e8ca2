"""The Run page's inputs: context (example, upload or paste), question, models and limits."""

from __future__ import annotations

from typing import Any

import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.context import size_of
from rlm_core.engine.budget import check_cost_limit
from rlm_core.engine.run import child_root_model
from rlm_core.errors import ModelError
from rlm_core.evaluate.examples import EXAMPLES
from rlm_core.ingest import Context, context_from_files
from rlm_core.models import local as local_model
from rlm_core.models.resolve import check_model
from rlm_core.readers import Data, IngestError
from ui.config_inputs import choice_input, limit_inputs, sampling_inputs
from ui.context_choice import ContextChoice
from ui.model_picker import (
    ROOT_PRESETS,
    SUB_PRESETS,
    child_root_picker,
    model_picker,
    saved_api_base,
    session_key,
)
from ui.safe import md

SOURCES = ("Example document", "Upload files", "Upload a folder", "Paste text")
MAX_UPLOAD_MB = 1024


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
            st.error(md(exc))
            return None
        for note in ctx.notes:
            st.caption(md(note))
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
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"Reading {md(what[:100])}…")

        try:
            cache[key] = context_from_files(files, progress)
        finally:
            bar.empty()
    return cache[key]


def size_line(choice: ContextChoice) -> str:
    return f"{choice.chars:,} characters · about {choice.chars // 4:,} tokens"


def config_form() -> RLMConfig | None:
    """Models, key and limits; returns None (with the reason shown) when the input is unusable."""
    left, right = st.columns(2)
    with left:
        root = model_picker("Root model", ROOT_PRESETS, "root_model")
        child_root = child_root_picker("child_root_model")
    with right:
        sub = model_picker("Sub model", SUB_PRESETS, "sub_model")
        prompt = choice_input("prompt", "prompt")
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
        limits = limit_inputs("lim")
    with st.expander("Sampling (temperature, seed)"):
        sampling = sampling_inputs("run")
    if not root or not sub or child_root == "":
        st.warning("Type a model name for each model.")
        return None
    if not _local_ready(root, sub, *([child_root] if child_root else [])):
        return None
    # empty fields fall back to what the Settings page set up for this session
    base = api_base.strip() or saved_api_base(root) or saved_api_base(sub)
    try:
        return RLMConfig(
            root_model=root,
            sub_model=sub,
            child_root_model=child_root,
            prompt=prompt,
            # empty fields fall back to what the Settings page set up for this session
            api_base=base,
            api_key=api_key.strip() or session_key(root, sub, child_root or sub, api_base=base),
            **limits,
            **sampling,
        )
    except ValueError as exc:
        st.error(md(exc))
        return None


def check_models(config: RLMConfig) -> bool:
    """Whether every model of the config can be called (else the reason is shown)."""
    models = {config.root_model, config.sub_model, child_root_model(config)}
    try:
        for model in models:
            check_model(model, api_base=config.api_base, api_key=config.api_key)
        check_cost_limit(config)  # a cost limit needs prices: refused before anything runs
    except ModelError as exc:
        st.error(md(exc))
        return False
    return True


def _local_ready(*models: str) -> bool:
    """`local/` models need their provider registered (and llama-cpp-python) before a run."""
    for model in models:
        if not local_model.is_local(model):
            continue
        if not local_model.available():
            st.error(local_model.INSTALL_HINT)
            return False
        if not local_model.model_path(model).is_file():
            st.error(f"No model file at {md(local_model.model_path(model))}.")
            return False
    return True
