"""Two real browser sessions run RLMs at once while a third browses the traces: no errors, no
lost nodes, and every page keeps answering (load times are printed, not asserted)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from browser import fill_run_form, launch, needs_chromium, streamlit_server
from conftest import ROOT, FakeOpenAIServer, FakeReply, by_model, repl

from rlm_core import TraceStore

pytestmark = [pytest.mark.browser, needs_chromium]
CALLS = 30
WAIT_MS = 120_000


def start_run(pg: Any, url: str, base_url: str, question: str) -> None:
    fill_run_form(pg, url, base_url, question)
    pg.get_by_role("button", name="Run", exact=True).click()


def test_two_sessions_run_while_a_third_browses(traces_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    def root(body: dict[str, Any]) -> str:
        if len(body["messages"]) > 2:
            return repl("FINAL('done ' + str(len(r)))")
        return repl(f"r = [llm_query(f'q{{i}}') for i in range({CALLS})]")

    def sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("answer", delay_s=0.1)

    env = {**os.environ, "RLM_TRACES_DIR": str(traces_dir)}
    loads: list[float] = []
    with (
        FakeOpenAIServer(by_model({"root": root, "sub": sub})) as fake,
        streamlit_server("app.py", cwd=ROOT, log_path=tmp_path / "st.log", env=env) as url,
        sync_playwright() as pw,
    ):
        browser = launch(pw)
        size = {"width": 1400, "height": 1000}
        runners = [browser.new_context(viewport=size).new_page() for _ in range(2)]
        for i, pg in enumerate(runners):
            start_run(pg, url, fake.base_url, f"question {i}?")
        reader = browser.new_context(viewport=size).new_page()
        deadline = time.time() + WAIT_MS / 1000
        while time.time() < deadline:
            for page in ("Runs", "Explorer"):
                t = time.perf_counter()
                reader.goto(f"{url}{page}")
                reader.get_by_role("heading", name=page).first.wait_for(timeout=WAIT_MS)
                loads.append(time.perf_counter() - t)
            if all(pg.get_by_text("Answer", exact=True).count() for pg in runners):
                break
        for pg in runners:
            pg.get_by_text("Answer", exact=True).wait_for(timeout=WAIT_MS)
            assert pg.get_by_text("done 30").count() == 1
        browser.close()
    print(f"\nPERF browse_while_two_runs page_load_s max={max(loads):.2f} n={len(loads)}")
    store = TraceStore(traces_dir)
    try:
        runs = store.list_runs()
        assert len(runs) == 2 and all(r.status == "ok" for r in runs)
        for run in runs:
            nodes = store.nodes(run.run_id)
            assert sum(n.kind == "llm_query" and n.status == "ok" for n in nodes) == CALLS
    finally:
        store.close()
