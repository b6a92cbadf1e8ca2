"""A real click on a graph node in headless Chromium reaches Python; nothing leaves 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CLICK_POINT, Guard, launch, needs_chromium, streamlit_server

from ui.graph_component import ensure_static

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from rlm_core.analysis.graph import vis_payload
from rlm_core.types import Node

from ui.graph_component import graph

evil = "<img src=/evil-img onerror=window.__pwned=1>"
nodes = [Node("n1", "r", None, "run", 0, 0, status="ok", input=evil)]
for i in range(2, 9):
    nodes.append(Node(f"n{{i}}", "r", "n1", "lm" if i % 2 else "code", 0, i, output=evil))
sel = st.session_state.get("sel")
if sel:  # a live update: the graph grows after the first click
    nodes.append(Node("n9", "r", "n2", "llm_query", 0, 9, status="running"))
clicked, step = graph(vis_payload(nodes), key="graph", height=420, selected=sel)
if clicked:
    st.session_state["sel"] = clicked
if step and sel:
    st.session_state["sel"] = f"n{{int(sel[1:]) + step}}"
    st.rerun()  # hand the new selection to the browser now rather than on the next run
st.write(f"SELECTED={{st.session_state.get('sel')}}")
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    app = tmp_path / "graph_app.py"
    app.write_text(APP)
    ensure_static(tmp_path / "static")  # Streamlit serves static/ next to the main script
    # started in tmp_path so that no .streamlit/config.toml of the checkout changes the setup
    with streamlit_server(
        app,
        cwd=tmp_path,
        log_path=tmp_path / "streamlit.log",
        extra=["--server.enableStaticServing", "true"],
    ) as url:
        yield url


def test_click_on_node_reaches_python_offline(server: str) -> None:
    from playwright.sync_api import sync_playwright

    guard = Guard()
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", guard)
            page.goto(server)
            page.wait_for_function(
                "window.__visnet && window.__visnet.body.data.nodes.length === 8", timeout=20_000
            )
            page.get_by_text("SELECTED=None").wait_for(timeout=30_000)
            page.evaluate("window.__first = window.__visnet")
            # zoom the way a user does (the wheel), so the graph stops fitting itself
            box = page.locator("canvas").first.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(300)
            zoom = page.evaluate("window.__visnet.getScale()")
            point = page.evaluate(CLICK_POINT, "n5")
            t0 = time.perf_counter()
            page.mouse.click(point["x"], point["y"])
            page.get_by_text("SELECTED=n5").wait_for(timeout=30_000)
            print(f"\nclick -> Python -> page: {1000 * (time.perf_counter() - t0):.0f} ms")
            # the next run grows the graph: the update goes into the same network, and zoom and
            # selection survive it; a selection made in Python selects and centres its node
            page.keyboard.press("ArrowRight")
            page.get_by_text("SELECTED=n6").wait_for(timeout=30_000)
            page.wait_for_function("window.__visnet.getSelectedNodes()[0] === 'n6'")
            assert page.evaluate("window.__visnet.body.data.nodes.length") == 9
            assert page.evaluate("window.__visnet === window.__first")
            page.wait_for_timeout(600)  # the focus animation
            assert page.evaluate("window.__visnet.getScale()") == pytest.approx(zoom)
            centre = page.evaluate(
                "(() => { const n = window.__visnet; const c = n.getViewPosition();"
                " const p = n.getPositions(['n6']).n6; return [p.x - c.x, p.y - c.y]; })()"
            )
            assert abs(centre[0]) < 1 and abs(centre[1]) < 1
            page.keyboard.press("k")
            page.get_by_text("SELECTED=n5").wait_for(timeout=30_000)
            assert page.evaluate("window.__pwned") is None
            page.screenshot(path=str(ROOT / ".pytest_cache" / "graph_browser.png"))
        finally:
            browser.close()

    assert guard.foreign == []
    assert any(u.endswith("/app/static/vis-network.min.js") for u in guard.local)
    assert not any("evil-img" in u for u in guard.local)


def test_standalone_export_opens_offline(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from rlm_core.analysis.graph import standalone_html
    from rlm_core.types import Node

    evil = "<img src=/evil-img onerror=window.__pwned=1> href"
    nodes = [Node("n1", "r", None, "run", 0, 0, status="ok", output=evil)]
    nodes += [Node(f"n{i}", "r", "n1", "lm", 0, i, output=evil) for i in range(2, 6)]
    path = tmp_path / "run.html"
    path.write_text(standalone_html(nodes, "run <1>"), encoding="utf-8")
    guard = Guard(allowed=(path.as_uri(),))
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.route("**/*", guard)
            page.goto(path.as_uri())
            page.wait_for_function(
                "typeof network !== 'undefined' && network.body.data.nodes.length === 5"
            )
            assert page.title() == "run <1>"
            # hovering shows the tooltip; with "href" in it pyvis uses innerHTML for the popup
            point = page.evaluate(CLICK_POINT.replace("window.__visnet", "network"), "n3")
            page.mouse.move(point["x"], point["y"])
            popup = page.locator("div.popup")
            popup.wait_for(timeout=5_000)
            assert "<img src=/evil-img onerror=window.__pwned=1> href" in popup.inner_text()
            assert page.evaluate("window.__pwned") is None
        finally:
            browser.close()
    assert guard.local == [path.as_uri()] and guard.foreign == []
