"""The Run page in headless Chromium at 1400x900: a double click on Run starts one run; its
status line, Stop and graph show beside the button without scrolling; a reload mid-run shows the
same live run; Stop ends it with a note that there is no answer. Screenshots go to RLM_SHOTS_DIR
(default: the test's temporary folder); waits are generous, nothing is timed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser import Guard, fill_run_form, launch, needs_chromium, streamlit_server
from conftest import ROOT, FakeOpenAIServer, batch_models

pytestmark = [pytest.mark.browser, needs_chromium]
CALLS = 2_000
WAIT_MS = 120_000
VIEWPORT = {"width": 1400, "height": 900}


TO_TOP = """() => {  // Streamlit scrolls its main container, not the window
    window.scrollTo(0, 0);
    for (const el of document.querySelectorAll("*")) if (el.scrollTop) el.scrollTop = 0;
}"""


def in_view(pg: Any, locator: Any, tries: int = 20) -> bool:
    """Whether the element is drawn inside the viewport at the top of the page. Asked a few
    times: while a rerun redraws the page an element may have no box for a moment."""
    for _ in range(tries):
        pg.evaluate(TO_TOP)
        box = locator.bounding_box()
        if box is not None and 0 <= box["y"] < VIEWPORT["height"] - 20:
            return True
        pg.wait_for_timeout(250)
    return False


def live_panel_shows(pg: Any) -> None:
    """Stop, the status line and the graph with nodes drawn, all beside the Run button."""
    stop = pg.get_by_role("button", name="Stop", exact=True)
    stop.wait_for(timeout=WAIT_MS)
    status = pg.get_by_text("model calls ·")
    status.wait_for(timeout=WAIT_MS)
    pg.wait_for_function(
        "window.__visnet && window.__visnet.body.data.nodes.length > 2", timeout=WAIT_MS
    )
    run = pg.get_by_role("button", name="Run", exact=True)
    graph = pg.locator("canvas").first
    for element in (run, stop, status, graph):
        assert in_view(pg, element)
    assert run.is_disabled()


def test_run_page_tracks_its_run_through_a_double_click_and_a_reload(
    traces_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("RLM_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RLM_TRACES_DIR": str(traces_dir)}
    guard = Guard()
    with (
        FakeOpenAIServer(batch_models(CALLS, delay_s=0.05)) as fake,
        streamlit_server("app.py", cwd=ROOT, log_path=tmp_path / "st.log", env=env) as url,
        sync_playwright() as pw,
    ):
        browser = launch(pw)
        pg = browser.new_context(viewport=VIEWPORT).new_page()
        pg.route("**/*", guard)
        fill_run_form(pg, url, fake.base_url, "What do the notes say?")
        # filling the key field scrolled Streamlit's main container (not the window): back up,
        # as a user does to reach the Run button
        pg.evaluate(TO_TOP)
        pg.get_by_role("button", name="Run", exact=True).dblclick()
        live_panel_shows(pg)
        pg.screenshot(path=str(shots / "run_page_after_run.png"))
        pg.wait_for_function("location.search.includes('run=')", timeout=WAIT_MS)
        run_id = pg.evaluate("new URLSearchParams(location.search).get('run')")

        pg.reload()
        live_panel_shows(pg)
        assert pg.get_by_text("Question: What do the notes say?").count() == 1
        pg.screenshot(path=str(shots / "run_page_after_reload.png"))

        pg.get_by_role("button", name="Stop", exact=True).click()
        pg.get_by_text("Open this run in the Explorer").wait_for(timeout=WAIT_MS)
        pg.get_by_text("before the root model wrote an answer").wait_for(timeout=WAIT_MS)
        assert pg.get_by_role("button", name="Run", exact=True).is_enabled()
        pg.screenshot(path=str(shots / "run_page_stopped.png"))
        browser.close()
    assert guard.foreign == []
    # the double click started one run
    assert [p.stem for p in (traces_dir / "journal").glob("*.jsonl")] == [run_id]
