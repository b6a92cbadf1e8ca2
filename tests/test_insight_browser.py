"""The real app in headless Chromium: the Learn walkthrough highlights the slice of each step in
the document view and draws dashed data-flow edges; the Explorer's Coverage panel renders.
Nothing leaves 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Guard, launch, needs_chromium, streamlit_server

from rlm_core.analysis.narrate import LEARN_DIR, example_run_id

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / ".pytest_cache"

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    traces = tmp_path_factory.mktemp("insight_traces")
    log_path = tmp_path_factory.mktemp("insight_log") / "streamlit.log"
    env = {**os.environ, "RLM_TRACES_DIR": str(traces)}
    with streamlit_server("app.py", cwd=ROOT, log_path=log_path, env=env) as url:
        yield url


@pytest.fixture
def page(server: str) -> Iterator[tuple[Any, Guard]]:
    from playwright.sync_api import sync_playwright

    guard = Guard()
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1100})
            pg = context.new_page()
            pg.route("**/*", guard)
            yield pg, guard
        finally:
            browser.close()
    assert guard.foreign == []


def test_learn_walkthrough_highlights_the_slice(server: str, page: tuple[Any, Guard]) -> None:
    pg, guard = page
    SHOTS.mkdir(exist_ok=True)
    pg.goto(f"{server}Learn")
    pg.get_by_text("Learn: how a recursive language model works").wait_for(timeout=30_000)
    pg.get_by_text("The run starts: the document becomes a variable").wait_for(timeout=30_000)
    pg.wait_for_function("window.__visnet && window.__visnet.body.data.nodes.length === 1")
    for _ in range(2):  # run -> root turn 1 -> the probe cell
        pg.get_by_role("button", name="Next ›").click()
    pg.get_by_text("Code runs: probe").wait_for(timeout=30_000)
    mark = pg.locator("mark.rlm-focus").first
    mark.wait_for(state="visible", timeout=30_000)
    mark.scroll_into_view_if_needed()
    box = mark.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0
    colour = mark.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    pg.wait_for_function("window.__visnet.body.data.nodes.length === 3")
    pg.screenshot(path=str(SHOTS / "learn_probe.png"), full_page=True)

    # on to the end: the answer's dashed edges come from the sub-call
    for _ in range(20):
        button = pg.get_by_role("button", name="Next ›")
        if button.is_disabled():
            break
        button.click()
        pg.wait_for_timeout(400)
    pg.get_by_text("You reached the end of the run.").wait_for(timeout=30_000)
    pg.wait_for_function("window.__visnet.body.data.edges.get().some(e => e.dashes)")
    pg.screenshot(path=str(SHOTS / "learn_end.png"), full_page=True)
    assert guard.local and guard.foreign == []


def test_explorer_coverage_and_document_panels(server: str, page: tuple[Any, Guard]) -> None:
    pg, guard = page
    run_id = example_run_id(LEARN_DIR / "needle.jsonl")
    pg.goto(f"{server}Learn")  # imports the bundled runs into this server's store
    pg.get_by_text("The run starts: the document becomes a variable").wait_for(timeout=30_000)
    pg.goto(f"{server}Explorer?run={run_id}")
    pg.wait_for_function("window.__visnet && window.__visnet.body.data.nodes.length > 5")
    pg.get_by_text("Coverage", exact=True).click()
    pg.get_by_text("Never read", exact=True).wait_for(timeout=30_000)
    pg.locator(".vega-embed").first.wait_for(state="visible", timeout=30_000)
    pg.locator("mark.rlm-model, mark.rlm-code").first.wait_for(state="attached", timeout=30_000)
    pg.screenshot(path=str(SHOTS / "explorer_coverage.png"), full_page=True)
    pg.get_by_text("Document", exact=True).click()
    pg.locator("mark.rlm-focus").first.wait_for(state="visible", timeout=30_000)
    pg.screenshot(path=str(SHOTS / "explorer_document.png"), full_page=True)
    assert guard.foreign == []
