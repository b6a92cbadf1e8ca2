"""Export a run from the Explorer (JSONL, HTML, OTel JSON, built only when downloaded) and import
a trace file on the Runs page. File contents and error texts are shown with st.text only.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from rlm_core.exchange.html import export_html
from rlm_core.exchange.jsonl import export_jsonl, import_file
from rlm_core.exchange.otel import export_otel
from rlm_core.exchange.rlms import ImportReport, RunExists
from rlm_core.store.trace_store import TraceStore
from ui.common import store
from ui.fork_panel import explorer_button, safe_id

log = logging.getLogger(__name__)

FORMATS: dict[str, tuple[str, str, str]] = {
    # label: (file suffix, mime type, what it is)
    "JSONL": (".jsonl", "application/jsonl", "lossless; re-import gives the identical trace"),
    "HTML": (".html", "text/html", "the graph with an inspector, opens offline"),
    "OTel JSON": (".otel.json", "application/json", "OpenTelemetry spans, GenAI attributes"),
}
REPORT = "import_report"
MAX_SKIPPED_SHOWN = 200


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


def export_buttons(s: TraceStore, run_id: str) -> None:
    name = safe_id(run_id) or "run"
    cols = st.columns([1, 1, 1, 3], vertical_alignment="center")
    for col, (fmt, (suffix, mime, what)) in zip(cols, FORMATS.items(), strict=False):
        col.download_button(
            f"⬇ {fmt}",
            data=export_data(s, run_id, fmt),
            file_name=f"{name}{suffix}",
            mime=mime,
            key=f"export_{fmt}",
            help=f"Download this run as {fmt}: {what}",
            on_click="ignore",
        )
    cols[-1].caption("Export this run (built when you click).")


# ---- import ----------------------------------------------------------------------------------


def _file_name(name: str) -> str:
    # only the base name, and only plain characters: it becomes a path in a private temp dir
    return re.sub(r"[^\w.-]", "_", Path(name).name)[:100] or "trace.jsonl"


def import_upload(s: TraceStore, name: str, data: bytes, *, replace: bool) -> ImportReport:
    """Import uploaded bytes through a temp file: import_file reads a str as a path unless it
    looks like file content, so upload content must never be passed to it as a str."""
    with tempfile.TemporaryDirectory(prefix="rlm-import-") as tmp:
        path = Path(tmp) / _file_name(name)
        path.write_bytes(data)
        return import_file(s, path, replace=replace)


def import_expander() -> None:
    with st.expander("Import a trace"):
        st.caption(
            "A JSONL export of this app, one of its journals, or an `rlms` RLMLogger log. "
            "Lines that cannot be read are listed; the rest is imported."
        )
        upload = st.file_uploader(
            "Trace file", type=["jsonl", "json", "txt", "log"], key="import_file"
        )
        replace = st.checkbox("Replace the run if it is already stored", key="import_replace")
        if upload is None:  # the report belongs to the file shown; removing it clears both
            st.session_state.pop(REPORT, None)
        if st.button("Import", key="import_button", disabled=upload is None) and upload:
            st.session_state[REPORT] = _import(upload.name, upload.getvalue(), replace)
        _show_report()


def _import(name: str, data: bytes, replace: bool) -> tuple[str, object]:
    try:
        return ("ok", import_upload(store(), name, data, replace=replace))
    except RunExists as exc:
        return ("exists", str(exc))
    except ValueError as exc:  # ImportFormatError and RunExists: a message meant for the user
        return ("error", str(exc))
    except Exception as exc:
        log.exception("import failed")
        return ("error", f"{type(exc).__name__}: {exc}")


def _show_report() -> None:
    got = st.session_state.get(REPORT)
    if got is None:
        return
    kind, value = got
    if kind != "ok" or not isinstance(value, ImportReport):
        st.error("The file was not imported:")
        st.text(str(value))
        if kind == "exists":
            st.caption("Tick “Replace the run if it is already stored” to import it again.")
        return
    st.success(f"Imported {value.nodes} nodes.")
    st.text(value.summary())
    run_id = safe_id(value.run_id)
    if run_id:
        explorer_button(f"Open the imported run {run_id}", run_id)
    if value.skipped:
        st.warning(f"{len(value.skipped)} line(s) were skipped:")
        st.text("\n".join(value.skipped[:MAX_SKIPPED_SHOWN]))
        if len(value.skipped) > MAX_SKIPPED_SHOWN:
            st.caption(f"… and {len(value.skipped) - MAX_SKIPPED_SHOWN} more")
