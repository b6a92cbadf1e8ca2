"""The real app (`streamlit run app.py`) in headless Chromium: the Explorer's graph clicks,
keyboard and button stepping, the URL, an XSS drill, and timings; nothing leaves 127.0.0.1."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser import CLICK_POINT, Guard, launch, needs_chromium, streamlit_server
from synthetic import synthetic_run, wide_run

from rlm_core import RLM, TraceStore
from rlm_core.analysis.views import node_label, step_order
from rlm_core.store.journal import JournalSink
from rlm_core.trace import Tracer
from rlm_core.types import Node, NodeKind, new_id
from ui.common import JOURNAL_SYNC_S

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / ".pytest_cache"
NEEDLE = "The secret code is 4471."
XSS = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>"]
BIG_RUN_CALLS = 2_000
PLAYED_STEPS = 24
WAIT_MS = 45_000
"""Generous: CI shares 2 cores with other work; timings are printed, never asserted."""
TIMINGS: dict[str, float] = {}

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


def numbered(n: int, insert: str = "") -> str:
    lines = [f"Line {i}: nothing to see here." for i in range(n)]
    return " ".join([*lines[: n // 2], insert, *lines[n // 2 :]])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """All runs are made before the server starts: only one process may open the database
    (the tests read the nodes they need before the server starts, too)."""
    traces = tmp_path_factory.mktemp("e2e_traces")
    demo = RLM("demo/root", "demo/sub", traces_dir=traces)
    ids = {
        "demo": demo.run(
            {"a.txt": numbered(800), "b.md": numbered(3000, NEEDLE)}, "What is the secret code?"
        ).run_id,
        "xss": demo.run(
            {
                f"{XSS[0]}.txt": numbered(300),
                "doc.md": numbered(600, f"The secret code is {XSS[0]} {XSS[1]}."),
            },
            f"What is the secret code? {XSS[1]}",
        ).run_id,
    }
    store = TraceStore(traces)
    try:
        ids["big"] = wide_run(store, BIG_RUN_CALLS, batch=500)
        ids["play"] = synthetic_run(store, 60, per_cell=8)
    finally:
        store.close()
    return traces, ids


@pytest.fixture(scope="module")
def server(
    runs: tuple[Path, dict[str, str]],
    demo_nodes: dict[str, list[Node]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    traces, _ = runs
    log_path = tmp_path_factory.mktemp("e2e_log") / "streamlit.log"
    env = {**os.environ, "RLM_TRACES_DIR": str(traces)}
    with streamlit_server("app.py", cwd=ROOT, log_path=log_path, env=env) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Guard]]:
    guard = Guard()
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = context.new_page()
    pg.route("**/*", guard)
    try:
        yield pg, guard
    finally:
        context.close()
    assert guard.foreign == []


def open_run(pg: Any, url: str, run_id: str, count: int) -> None:
    pg.goto(f"{url}Explorer?run={run_id}")
    pg.wait_for_function(
        f"window.__visnet && window.__visnet.body.data.nodes.length === {count}", timeout=30_000
    )


@pytest.fixture(scope="module")
def demo_nodes(runs: tuple[Path, dict[str, str]]) -> dict[str, list[Node]]:
    traces, ids = runs
    store = TraceStore(traces)
    try:
        return {name: store.nodes(run_id) for name, run_id in ids.items()}
    finally:
        store.close()


def test_click_keyboard_buttons_and_url(
    demo_nodes: dict[str, list[Node]],
    server: str,
    runs: tuple[Path, dict[str, str]],
    page: tuple[Any, Guard],
) -> None:
    pg, _ = page
    nodes = demo_nodes["demo"]
    order = step_order(nodes)
    by_id = {n.node_id: n for n in nodes}
    open_run(pg, server, runs[1]["demo"], len(nodes))
    target = next(n for n in nodes if n.kind == "llm_query")
    k = order.index(target.node_id)

    def label(i: int) -> str:
        return node_label(by_id[order[i]], i + 1)

    point = pg.evaluate(CLICK_POINT, target.node_id)
    t0 = time.perf_counter()
    pg.mouse.click(point["x"], point["y"])
    pg.get_by_text(label(k), exact=True).wait_for(timeout=WAIT_MS)
    TIMINGS["click_to_inspector_s"] = time.perf_counter() - t0
    pg.get_by_text("Passed upward").wait_for()
    pg.wait_for_function(f"location.search.includes('node={target.node_id}')")
    pg.screenshot(path=str(SHOTS / "explorer_click.png"), full_page=True)

    pg.keyboard.press("ArrowRight")
    pg.get_by_text(label(k + 1), exact=True).wait_for(timeout=WAIT_MS)
    pg.wait_for_function(f"window.__visnet.getSelectedNodes()[0] === '{order[k + 1]}'")
    pg.wait_for_function(f"location.search.includes('node={order[k + 1]}')")
    pg.keyboard.press("k")
    pg.get_by_text(label(k), exact=True).wait_for(timeout=WAIT_MS)
    pg.get_by_role("button", name="Next ›").click()
    pg.get_by_text(label(k + 1), exact=True).wait_for(timeout=WAIT_MS)
    pg.get_by_role("button", name="« First").click()
    pg.get_by_text(label(0), exact=True).wait_for(timeout=WAIT_MS)
    pg.wait_for_function(f"location.search.includes('node={order[0]}')")
    pg.wait_for_function(f"window.__visnet.getSelectedNodes()[0] === '{order[0]}'")
    # Play replays from the start with the graph growing one node per tick
    pg.get_by_role("button", name="Last »").click()
    pg.get_by_text(label(len(order) - 1), exact=True).wait_for(timeout=WAIT_MS)
    pg.get_by_role("button", name="▶ Play").click()
    pg.wait_for_function("window.__visnet.body.data.nodes.length === 1", timeout=WAIT_MS)
    pg.wait_for_function("window.__visnet.body.data.nodes.length === 3", timeout=WAIT_MS)
    pg.get_by_role("button", name="‖ Pause").click()
    everything = f"window.__visnet.body.data.nodes.length === {len(order)}"
    pg.wait_for_function(everything, timeout=WAIT_MS)


def test_live_run_grows_in_place(
    server: str, runs: tuple[Path, dict[str, str]], page: tuple[Any, Guard]
) -> None:
    """A run of another process (as the CLI does while the app holds the database) reaches the
    app through its journal; the live fragment re-reads it and the graph keeps its zoom."""
    pg, _ = page
    run_id = new_id()
    tracer = Tracer([JournalSink(runs[0] / "journal" / f"{run_id}.jsonl", run_id)])
    meta = {"question": "live?", "root_model": "demo/root", "sub_model": "demo/sub"}
    root = tracer.start(Node(run_id, run_id, None, "run", 0, 0, input="live?", meta=meta))
    time.sleep(JOURNAL_SYNC_S + 0.2)  # the app imports journals at most this often
    open_run(pg, server, run_id, 1)
    pg.get_by_text("still running").wait_for(timeout=WAIT_MS)
    pg.wait_for_timeout(700)  # let the animation that centres the selected node finish
    # a real wheel zoom: the graph keeps fitting itself while it grows until the user moves it
    point = pg.evaluate(CLICK_POINT, run_id)
    pg.mouse.move(point["x"], point["y"])
    pg.mouse.wheel(0, -400)
    pg.wait_for_timeout(300)
    scale = pg.evaluate("window.__visnet.getScale()")
    assert scale != pytest.approx(1.0)
    kinds: tuple[NodeKind, ...] = ("lm", "code")
    for seq, kind in enumerate(kinds, 1):
        tracer.end(tracer.start(Node(new_id(), run_id, run_id, kind, 0, seq)), "ok")
    pg.wait_for_function("window.__visnet.body.data.nodes.length === 3", timeout=20_000)
    assert pg.evaluate("window.__visnet.getScale()") == pytest.approx(scale)
    tracer.end(root, "ok", output="done")
    tracer.close()
    pg.get_by_text("still running").wait_for(state="detached", timeout=20_000)


def test_xss_drill(
    demo_nodes: dict[str, list[Node]],
    server: str,
    runs: tuple[Path, dict[str, str]],
    page: tuple[Any, Guard],
) -> None:
    pg, guard = page
    nodes = demo_nodes["xss"]
    assert any(XSS[0] in (n.output or "") for n in nodes if n.kind == "llm_query")
    open_run(pg, server, runs[1]["xss"], len(nodes))
    order = step_order(nodes)
    by_id = {n.node_id: n for n in nodes}
    for node_id in order:
        if by_id[node_id].kind not in ("run", "llm_query", "final", "code"):
            continue
        point = pg.evaluate(CLICK_POINT, node_id)
        pg.mouse.move(point["x"], point["y"])
        pg.wait_for_timeout(250)  # the tooltip delay is 150 ms
        pg.mouse.click(point["x"], point["y"])
        label = node_label(by_id[node_id], order.index(node_id) + 1)
        pg.get_by_text(label, exact=True).wait_for(timeout=WAIT_MS)
    tip = pg.evaluate("(document.querySelector('div.vis-tooltip') || {}).textContent || ''")
    assert "onerror" in tip or "<script>" in tip or tip == ""
    assert pg.get_by_text(XSS[1]).count() > 0  # shown as text somewhere on the page
    pg.screenshot(path=str(SHOTS / "explorer_xss.png"), full_page=True)
    assert pg.evaluate("window.__xss") is None
    assert not any(urlparse(u).path.endswith("/x") for u in guard.local)


def test_play_goes_through_every_step_in_order(
    demo_nodes: dict[str, list[Node]],
    server: str,
    runs: tuple[Path, dict[str, str]],
    page: tuple[Any, Guard],
) -> None:
    """Play advances one step per tick: the URL shows every step once, in order, with none
    skipped or repeated, and Play is still on after more than 20 steps."""
    pg, _ = page
    order = step_order(demo_nodes["play"])
    assert len(order) > PLAYED_STEPS
    pg.goto(f"{server}Explorer?run={runs[1]['play']}&node={order[0]}")
    pg.wait_for_function("window.__visnet && window.__visnet.body.data.nodes.length > 0")
    pg.get_by_role("button", name="▶ Play").click()
    seen: list[str] = [order[0]]
    deadline = time.monotonic() + 240  # Play ticks every 0.8 s; the machine may be loaded
    while len(seen) <= PLAYED_STEPS and time.monotonic() < deadline:
        node = pg.evaluate("new URLSearchParams(location.search).get('node')")
        if node and node != seen[-1]:
            seen.append(node)
        pg.wait_for_timeout(40)
    assert [order.index(n) for n in seen] == list(range(len(seen)))
    assert len(seen) > PLAYED_STEPS
    assert pg.get_by_role("button", name="‖ Pause").count() == 1  # nothing stopped it
    pg.get_by_role("button", name="‖ Pause").click()


def test_a_big_run_is_drawn_in_groups_that_open_on_click(
    server: str, runs: tuple[Path, dict[str, str]], page: tuple[Any, Guard]
) -> None:
    """A 2,000-call run opens as a handful of nodes with one group per batch; a click on the
    group with a failed call opens it and the inspector shows that call's error; its header
    folds it again."""
    pg, _ = page
    t0 = time.perf_counter()
    pg.goto(f"{server}Explorer?run={runs[1]['big']}")
    pg.wait_for_function("window.__visnet && window.__visnet.body.data.nodes.length > 0")
    TIMINGS["open_big_run_s"] = time.perf_counter() - t0
    drawn = pg.evaluate("window.__visnet.body.data.nodes.get().map(n => n.id)")
    groups = [i for i in drawn if i.startswith("~b:")]
    assert len(drawn) < 60 and len(groups) == BIG_RUN_CALLS // 500
    failed = pg.evaluate(
        "window.__visnet.body.data.nodes.get()"
        ".filter(n => n.id.startsWith('~b:') && n.color.border === '#d62728').map(n => n.id)"
    )
    assert failed
    point = pg.evaluate(CLICK_POINT, failed[0])
    pg.mouse.click(point["x"], point["y"])
    pg.get_by_text("This node ended with an error:").wait_for(timeout=WAIT_MS)
    pg.get_by_text("RateLimitError: 429 Too Many Requests").first.wait_for(timeout=WAIT_MS)
    pg.wait_for_function("window.__visnet.body.data.nodes.length > 60", timeout=WAIT_MS)
    pg.screenshot(path=str(SHOTS / "explorer_big_open.png"))
    point = pg.evaluate(CLICK_POINT, failed[0])  # the open group's header
    pg.mouse.click(point["x"], point["y"])
    pg.wait_for_function("window.__visnet.body.data.nodes.length < 60", timeout=WAIT_MS)
    print(
        f"\nPERF click_to_inspector_s={TIMINGS.get('click_to_inspector_s', float('nan')):.3f} "
        f"open_big_run_s={TIMINGS['open_big_run_s']:.3f}"
    )
