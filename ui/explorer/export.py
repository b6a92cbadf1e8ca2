"""Export a run from the Explorer: JSONL, HTML or OTel JSON, each built only when downloaded."""

from __future__ import annotations

import json
from collections.abc import Callable

import streamlit as st

from rlm_core.exchange.html import export_html
from rlm_core.exchange.jsonl import export_jsonl
from rlm_core.exchange.otel import export_otel
from rlm_core.store.trace_store import TraceStore
from ui.safe import safe_id

FORMATS: dict[str, tuple[str, str, str]] = {
    # label: (file suffix, mime type, what it is)
    "JSONL": (".jsonl", "application/jsonl", "lossless; re-import gives the identical trace"),
    "HTML": (".html", "text/html", "the graph with an inspector, opens offline"),
    "OTel JSON": (".otel.json", "application/json", "OpenTelemetry spans, GenAI attributes"),
}


def export_data(s: TraceStore, run_id: str, fmt: str) -> Callable[[], bytes]:
    """The file of one format, built when the browser asks for it: Streamlit calls this on a
    thread of its own, so it gets the store passed in and calls no st.* itself."""

    def build() -> bytes:
        if fmt == "JSONL":
            return export_jsonl(s, run_id).encode("utf-8")
        if fmt == "HTML":
            return export_html(s, run_id).encode("utf-8")
        return json.dumps(export_otel(s, run_id), ensure_ascii=False).encode("utf-8")

    return build


def export_menu(s: TraceStore, run_id: str) -> None:
    """A menu of the three downloads (each file is built when its button is clicked)."""
    name = safe_id(run_id) or "run"
    with st.popover("⬇ Export", use_container_width=True):
        for fmt, (suffix, mime, what) in FORMATS.items():
            st.download_button(
                f"⬇ {fmt}",
                data=export_data(s, run_id, fmt),
                file_name=f"{name}{suffix}",
                mime=mime,
                key=f"export_{fmt}",
                help=f"Download this run as {fmt}: {what}",
                on_click="ignore",
            )
            st.caption(what)
