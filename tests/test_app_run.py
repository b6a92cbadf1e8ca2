"""The Run page under AppTest: example, upload and paste contexts, a demo run to the end, errors."""

from __future__ import annotations

import pytest
from conftest import ROOT, poll
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("fresh_app")


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()


def answered(at: AppTest) -> bool:
    return bool(at.session_state["current_run"]) and any(
        "Open this run" in str(getattr(e, "proto", "")) for e in at.get("page_link")
    )


def wait_for_answer(at: AppTest, seconds: float = 60) -> AppTest:
    return poll(at, answered, "the run did not finish", seconds)


def test_example_document_runs_with_demo_models_to_the_answer() -> None:
    at = app()
    assert not at.exception
    assert at.selectbox(key="root_model").value == "demo/root"
    assert at.selectbox(key="sub_model").value == "demo/sub"
    assert any("1,000,040 characters" in c.value for c in at.caption)
    at.button(key="run_button").click().run()
    at = wait_for_answer(at)
    assert not at.exception
    assert [s.value for s in at.success] == ["Answer"]
    assert any("48213" in t.value for t in at.text)
    assert any("model calls" in m.value and "cost $0.0000" in m.value for m in at.markdown)


def test_uploaded_files_become_the_context() -> None:
    at = app()
    at.radio(key="ctx_source").set_value("Upload files").run()
    uploader = at.get("file_uploader")[0]
    assert uploader is not None
    at.session_state  # noqa: B018 - touch state so the uploader keeps its widget id
    files = [
        ("a.txt", b"Alpha notes.\n" * 50, "text/plain"),
        ("b.md", b"# Beta\nThe secret code is 77.\n", "text/markdown"),
    ]
    at.get("file_uploader")[0].set_value(files).run()  # type: ignore[union-attr]
    assert not at.exception
    assert any("2 files" in c.value for c in at.caption)


def test_binary_upload_gets_a_clear_message() -> None:
    at = app()
    at.radio(key="ctx_source").set_value("Upload files").run()
    at.get("file_uploader")[0].set_value(  # type: ignore[union-attr]
        [("x.bin", bytes(range(256)) * 20, "application/octet-stream")]
    ).run()
    assert not at.exception
    assert any("binary" in e.value for e in at.error)
    assert at.button(key="run_button").disabled


def test_pasted_text_and_an_unknown_model_name() -> None:
    at = app()
    at.radio(key="ctx_source").set_value("Paste text").run()
    at.text_area(key="ctx_paste").set_value("Some pasted context. The code is 5.").run()
    at.text_input[0].set_value("What is the code?").run()
    at.selectbox(key="root_model").set_value(at.selectbox(key="root_model").options[-1]).run()
    at.text_input(key="root_model_custom").set_value("nosuchprovider/model").run()
    at.button(key="run_button").click().run()
    assert not at.exception
    assert any("Unknown model 'nosuchprovider/model'" in e.value for e in at.error)
    assert "current_run" not in at.session_state
