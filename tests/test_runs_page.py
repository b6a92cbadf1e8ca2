"""The Runs page under AppTest: listing, search, filters, selection actions, escaping."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rlm_core import RLM, Node, TraceStore
from rlm_core.types import RunSummary, new_id
from ui.runs import page as runs_page

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "2_Runs.py")
XSS = "What is <script>alert(1)</script>?"


def fake_run(
    store: TraceStore,
    question: str,
    *,
    status: str,
    created_at: float,
    cost: float | None,
    model: str = "openai/gpt-4o-mini",
) -> str:
    """A root run node written straight to the store (no engine): for states a demo run can't
    reach, such as an unknown cost or a run still executing."""
    run_id = new_id()
    node = Node(
        node_id=run_id,
        run_id=run_id,
        parent_id=None,
        kind="run",
        depth=0,
        seq=0,
        status=status,  # type: ignore[arg-type]
        started_at=created_at,
        ended_at=None if status == "running" else created_at + 75,
        model=model,
        input=question,
        output=None if status == "running" else "forty-two",
        tokens_in=1000,
        tokens_out=234,
        cost_usd=cost,
        # the live pid/host keep recovery from marking the running run interrupted
        meta={
            "question": question,
            "root_model": model,
            "sub_model": "openai/gpt-4o-mini",
            "iterations": 3,
            "llm_calls": 7,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        },
    )
    store.write(node)
    store.flush()
    return run_id


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Four runs made once per module and copied into each test's traces dir: two real demo runs
    (the second asks the XSS question), one error run of unknown cost, one still running."""
    path = tmp_path_factory.mktemp("runs_template") / "traces"
    ids: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLM_TRACES_DIR", str(path))
        store = TraceStore(path)
        now = time.time()
        ids["unknown_cost"] = fake_run(
            store,
            "Old question with unknown cost",
            status="error",
            created_at=now - 7200,
            cost=None,
        )
        ids["running"] = fake_run(
            store, "Still going", status="running", created_at=now - 3600, cost=0.5
        )
        store.close()
        ids["demo"] = (
            RLM("demo/root", "demo/sub").run("hello world " * 50, "Who is greeted?").run_id
        )
        ids["xss"] = RLM("demo/root", "demo/sub").run("abc " * 50, XSS).run_id
    return path, ids


@pytest.fixture
def runs(
    template: tuple[Path, dict[str, str]], traces_dir: Path, fresh_app: None
) -> dict[str, str]:
    """The template's runs in this test's traces dir; `fresh_app` points the app's store at it."""
    shutil.copytree(template[0], traces_dir)
    return template[1]


def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    return at


def listed(at: AppTest) -> pd.DataFrame:
    frame = at.dataframe[0].value
    assert isinstance(frame, pd.DataFrame)
    return frame


def select(at: AppTest, rows: list[int]) -> AppTest:
    key = at.dataframe[0].key
    assert key is not None
    at.session_state[key] = {"selection": {"rows": rows, "columns": []}}
    at.run()
    assert not at.exception
    return at


def read_back(run_id: str) -> RunSummary | None:
    store = TraceStore()
    try:
        return store.get_run(run_id)
    finally:
        store.close()


def test_table_lists_runs_newest_first_with_summary_columns(runs: dict[str, str]) -> None:
    frame = listed(app())
    assert list(frame.columns) == list(runs_page.COLUMNS)
    assert list(frame["ID"]) == [runs["xss"], runs["demo"], runs["running"], runs["unknown_cost"]]
    demo = frame[frame["ID"] == runs["demo"]].iloc[0]
    assert demo["Run"] == "Who is greeted?"
    assert demo["Models"] == "demo/root / demo/sub"
    assert demo["Status"] == "✅ ok"
    assert demo["Iterations"] > 0 and demo["Calls"] > 0 and demo["Tokens"] > 0
    assert demo["Answer"]
    assert demo["Open"] == f"/Explorer?run={runs['demo']}"
    old = frame[frame["ID"] == runs["unknown_cost"]].iloc[0]
    assert old["Cost"] == "unknown"
    assert old["Duration"] == "1 min 15 s"
    assert old["Tokens"] == 1234
    running = frame[frame["ID"] == runs["running"]].iloc[0]
    assert running["Duration"] == "running…"
    assert running["Cost"] == "$0.5000"


def test_search_status_model_and_sort(runs: dict[str, str]) -> None:
    at = app()
    at.text_input(key="runs_search").input("greeted").run()
    assert list(listed(at)["ID"]) == [runs["demo"]]

    at.text_input(key="runs_search").input("").run()
    at.multiselect(key="runs_status").set_value(["error", "running"]).run()
    assert set(listed(at)["ID"]) == {runs["unknown_cost"], runs["running"]}

    at.multiselect(key="runs_status").set_value([]).run()
    at.selectbox(key="runs_model").set_value("demo/sub").run()
    assert set(listed(at)["ID"]) == {runs["demo"], runs["xss"]}

    at.selectbox(key="runs_model").set_value(runs_page.ALL_MODELS).run()
    at.selectbox(key="runs_sort").set_value("Oldest first").run()
    assert listed(at)["ID"].iloc[0] == runs["unknown_cost"]

    at.text_input(key="runs_search").input("no such run anywhere").run()
    assert not at.exception
    assert not at.dataframe
    assert "No runs match" in at.info[0].value


def test_rename_and_tags_persist(runs: dict[str, str]) -> None:
    at = select(app(), [1])  # the demo run
    run_id = runs["demo"]
    at.text_input(key=f"rename_{run_id}").input("baseline")
    at.button(key=f"save_name_{run_id}").click().run()
    assert not at.exception
    at.text_input(key=f"tags_{run_id}").input(" fast, demo ,, fast")
    at.button(key=f"save_tags_{run_id}").click().run()
    assert not at.exception

    frame = listed(at)
    row = frame[frame["ID"] == run_id].iloc[0]
    assert row["Run"] == "baseline"
    assert list(row["Tags"]) == ["demo", "fast"]
    st.cache_resource.clear()  # read back through a fresh store, as after a restart
    saved = read_back(run_id)
    assert saved is not None and saved.name == "baseline" and saved.tags == ["demo", "fast"]

    at = app()
    at.text_input(key="runs_search").input("fast").run()  # tags are searchable
    assert list(listed(at)["ID"]) == [run_id]


def test_delete_needs_confirmation_and_removes_run_and_journal(
    runs: dict[str, str], traces_dir: Path
) -> None:
    run_id = runs["xss"]
    journal = traces_dir / "journal" / f"{run_id}.jsonl"
    assert journal.exists()
    at = select(app(), [0])
    delete = next(b for b in at.button if b.label == "Delete run")
    assert delete.disabled
    next(c for c in at.checkbox if c.label == runs_page.CONFIRM_TEXT).check().run()
    next(b for b in at.button if b.label == "Delete run").click().run()
    assert not at.exception
    assert "deleted" in at.success[0].value
    assert run_id not in set(listed(at)["ID"])
    assert not journal.exists()
    st.cache_resource.clear()
    assert read_back(run_id) is None


def test_bulk_delete_skips_running_runs(runs: dict[str, str]) -> None:
    at = select(app(), [0, 1, 2])  # xss, demo, running
    assert any("still running" in c.value for c in at.caption)
    next(c for c in at.checkbox if c.label == runs_page.CONFIRM_TEXT).check().run()
    next(b for b in at.button if b.label == "Delete 2 runs").click().run()
    assert not at.exception
    assert list(listed(at)["ID"]) == [runs["running"], runs["unknown_cost"]]


def test_selected_run_links_to_explorer(runs: dict[str, str]) -> None:
    at = select(app(), [1])
    # under the real entrypoint this is an st.page_link; run alone, the page falls back to a URL
    links = [*at.get("page_link"), *at.get("link_button")]
    assert links
    assert any(runs["demo"] in str(link.proto) for link in links)


def test_untrusted_run_text_is_never_html(runs: dict[str, str]) -> None:
    at = select(app(), [0])  # the XSS run
    assert listed(at)["Run"].iloc[0] == XSS  # shown as inert cell text
    assert any(XSS in t.value for t in at.text)
    for element in [*at.markdown, *at.caption, *at.subheader, *at.info, *at.success]:
        assert "<script" not in element.value
        assert not getattr(element.proto, "allow_html", False) or "alert" not in element.value


def test_empty_state_points_to_run_page(fresh_app: None) -> None:
    at = app()
    assert not at.dataframe
    assert "No runs yet" in at.info[0].value
    assert at.get("page_link") or at.get("link_button")


def test_store_error_is_a_message_not_a_traceback(
    fresh_app: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(TraceStore, "list_runs", broken)
    at = app()
    assert "disk on fire" in at.error[0].value


def test_in_app_links_under_the_real_entrypoint(runs: dict[str, str], tmp_path: Path) -> None:
    """With app.py as entrypoint and the Explorer page present, links navigate inside the app."""
    site = tmp_path / "site"
    (site / "pages").mkdir(parents=True)
    (site / "app.py").write_text("import streamlit as st\nst.write('run page')\n")
    (site / "pages" / "1_Explorer.py").write_text("import streamlit as st\nst.write('explorer')\n")
    shutil.copy(PAGE, site / "pages" / "2_Runs.py")
    at = AppTest.from_file(str(site / "app.py"), default_timeout=30).run()
    at.switch_page("pages/2_Runs.py").run()
    assert not at.exception
    select(at, [1])
    link = at.get("page_link")[0].proto
    assert link.label == "Open in Explorer"
    assert link.query_string == f"run={runs['demo']}"


def test_new_listing_drops_a_stale_selection(runs: dict[str, str]) -> None:
    at = select(app(), [0])
    assert [s.value for s in at.subheader] == ["Selected run"]
    at.text_input(key="runs_search").input("greeted").run()
    # row 0 of the new listing is another run: it must not inherit the selection
    assert not at.subheader


def test_formatting_and_sort_helpers() -> None:
    base = RunSummary("r", status="ok", created_at=100.0, tokens_in=None, tokens_out=None)
    assert runs_page.duration_text(replace(base, ended_at=103.25)) == "3.2 s"
    assert runs_page.duration_text(replace(base, ended_at=100.0 + 3 * 3600 + 120)) == "3 h 02 min"
    assert runs_page.duration_text(replace(base, status="running", ended_at=None)) == "running…"
    assert runs_page.tokens(base) is None
    assert runs_page.parse_tags(" a, ,b,a ") == ["a", "b", "a"]  # the store dedupes and sorts
    assert runs_page.one_line("x\n  y" + "z" * 100, 10) == "x yzzzzzz…"
    costs = [
        replace(base, ended_at=101.0, run_id=k, cost_usd=c)
        for k, c in [("free", 0.0), ("unknown", None), ("dear", 2.5)]
    ]
    ordered = runs_page.apply_filters(costs, runs_page.Filters("", (), None, "Most expensive"))
    assert [r.run_id for r in ordered] == ["dear", "free", "unknown"]
