"""Export buttons in the Explorer, trace import and the Compare link on the Runs page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, TraceStore
from rlm_core.engine.replay import fork_run
from rlm_core.exchange.jsonl import export_jsonl
from ui.explorer import export
from ui.runs import import_trace

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "Filler. " * 300 + "The secret code is 4471. " + "More. " * 300


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(run id, JSONL export) of a demo run made in a traces dir of its own."""
    store = TraceStore(tmp_path_factory.mktemp("source"))
    try:
        run_id = RLM("demo/root", "demo/sub", store=store).run(CONTEXT, "Secret code?").run_id
        return run_id, export_jsonl(store, run_id)
    finally:
        store.close()


def runs_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "2_Runs.py"), default_timeout=60).run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, *, replace: bool = False) -> AppTest:
    at.file_uploader(key="import_file").set_value((name, data, "application/jsonl"))
    at.checkbox(key="import_replace").set_value(replace)
    at.run()  # the Import button is enabled once a file is there
    at.button(key="import_button").click().run()
    assert not at.exception
    return at


def test_import_on_the_runs_page(exported: tuple[str, str], fresh_app: None) -> None:
    run_id, text = exported
    at = runs_page()
    assert any("No runs yet" in i.value for i in at.info)  # a fresh traces dir
    at = upload(at, "run.jsonl", text.encode())
    assert any("Imported" in s.value for s in at.success)
    assert any(f"imported run {run_id}" in t.value for t in at.text)
    assert any(f"/Explorer?run={run_id}" in b.proto.url for b in at.get("link_button"))
    listed = at.dataframe[0].value
    assert isinstance(listed, pd.DataFrame) and list(listed["ID"]) == [run_id]

    upload(at, "run.jsonl", text.encode())  # the same run again, without "replace"
    assert any("not imported" in e.value for e in at.error)
    assert any("already exists" in t.value for t in at.text)
    assert any("Replace the run" in c.value for c in at.caption)
    broken = text + '{"kind": "lm", "oops": \n'
    upload(at, "run.jsonl", broken.encode(), replace=True)
    assert any("Imported" in s.value for s in at.success)
    assert any("1 line(s) were skipped" in w.value for w in at.warning)


@pytest.mark.parametrize("content", [b"not a trace\n", b"", b"PATH"])
def test_import_errors_are_messages(
    content: bytes, exported: tuple[str, str], tmp_path: Path, fresh_app: None
) -> None:
    if content == b"PATH":  # a file holding the path of a valid trace on the server
        path = tmp_path / "elsewhere.jsonl"
        path.write_text(exported[1])
        content = str(path).encode()
    at = upload(runs_page(), "x.jsonl", content)
    assert any("not imported" in e.value for e in at.error)
    assert not at.success  # upload content is never taken for a path on the server


def test_export_buttons_build_each_format_on_demand(
    exported: tuple[str, str], traces_dir: Path, fresh_app: None
) -> None:
    run_id, text = exported
    store = TraceStore(traces_dir)
    try:
        report = import_trace.import_upload(store, "run.jsonl", text.encode(), replace=False)
        assert report.run_id == run_id
        built = {fmt: export.export_data(store, run_id, fmt)() for fmt in export.FORMATS}
    finally:
        store.close()
    assert json.loads(built["JSONL"].decode().splitlines()[0])["run_id"] == run_id
    assert built["JSONL"].decode().count("\n") == text.count("\n")
    assert b"<html" in built["HTML"] and run_id.encode() in built["HTML"]
    assert "resourceSpans" in json.loads(built["OTel JSON"])

    at = AppTest.from_file(str(ROOT / "pages" / "1_Explorer.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    buttons = at.get("download_button")
    labels = [b.proto.label for b in buttons]
    assert labels[:3] == ["⬇ JSONL", "⬇ HTML", "⬇ OTel JSON"]


def test_two_selected_runs_link_to_compare(traces_dir: Path, fresh_app: None) -> None:
    store = TraceStore(traces_dir)
    try:
        first = RLM("demo/root", "demo/sub", store=store).run(CONTEXT, "Secret code?")
        lm = next(n for n in store.nodes(first.run_id) if n.kind == "lm")
        fork = fork_run(store, first.run_id, lm.node_id, response="Known.\nFINAL(1)")
    finally:
        store.close()
    at = runs_page()
    key = at.dataframe[0].key
    assert key is not None
    at.session_state[key] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    assert not at.exception
    links = [str(b.proto) for b in (*at.get("page_link"), *at.get("link_button"))]
    assert any(f"/Compare?a={first.run_id}&b={fork.run_id}" in link for link in links)
