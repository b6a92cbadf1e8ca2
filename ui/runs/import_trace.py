"""Import a trace file on the Runs page: our JSONL export, one of our journals, or an `rlms`
RLMLogger log. File contents and error texts are shown with st.text only.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import streamlit as st

from rlm_core.exchange.jsonl import import_file
from rlm_core.exchange.rlms import ImportReport, RunExists
from rlm_core.store.trace_store import TraceStore
from ui.common import store
from ui.safe import file_name, safe_id
from ui.widgets import explorer_button

log = logging.getLogger(__name__)

REPORT = "import_report"
MAX_SKIPPED_SHOWN = 200


def import_upload(s: TraceStore, name: str, data: bytes, *, replace: bool) -> ImportReport:
    """Import uploaded bytes through a temp file: import_file reads a str as a path unless it
    looks like file content, so upload content must never be passed to it as a str."""
    with tempfile.TemporaryDirectory(prefix="rlm-import-") as tmp:
        # only a plain base name: it becomes a path in this private folder
        path = Path(tmp) / file_name(name, "trace.jsonl")
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
