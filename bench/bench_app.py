"""The app in a real browser (Playwright driving Debian's chromium at 1400x900) against
`streamlit run app.py` on 127.0.0.1: the Explorer on realistic large runs (10,000 sub-calls in
batches, a 3-level recursion, a 200-turn root) beside an 11-node run, the node table's filter,
Compare of two 2,000-node runs, the Run page's live view of a 2,000-sub-call run (watched and not
watched), and app memory with 1,000 stored runs.

`python bench/bench_app.py [--trials N] [--quick] [--write-readme]`. Synthetic runs are written
straight to the store (tests/synthetic.py): the figures measure reading and drawing only. Each
trial starts a fresh server, so every first open of a run is cold (nothing cached).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from browser import CLICK_POINT, launch, streamlit_server  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from synthetic import deep_run, long_run, synthetic_run, wide_run  # noqa: E402

from rlm_core import RLM  # noqa: E402
from rlm_core.store.journal import read_journal  # noqa: E402
from rlm_core.store.trace_store import TraceStore  # noqa: E402

Row = tuple[str, str, str]
WAIT_MS = 300_000
"""Generous: the machine is shared; a figure taken under load says so next to it."""
LIVE_CALLS = 2_000
LIVE_CODE = (
    "chunks = [context[i:i + 100] for i in range(0, len(context), 100)]\n"
    "out = str(len(llm_query_batched([f'Summarize: {c}' for c in chunks])))"
)
HEADING = "h3:has-text('step ')"
"""The inspector's heading ('step N: kind ...'): it changes when a step has been shown."""


def runs(traces: Path) -> dict[str, str]:
    """The runs measured; built before the server starts (one process owns the database)."""
    demo = RLM("demo/root", "demo/sub", traces_dir=traces)
    ids = {"11 nodes": demo.run("The code is 4471. " * 50, "What is the code?").run_id}
    store = TraceStore(traces)
    try:
        ids["10,000 sub-calls"] = wide_run(store, 10_000)
        ids["3-level recursion"] = deep_run(store)
        ids["200-turn root"] = long_run(store, 200)
        ids["compare a"] = wide_run(store, 2_000, batch=500)
        ids["compare b"] = wide_run(store, 2_000, batch=400)
        ids["warm-up"] = synthetic_run(store, 30, per_cell=8)
        for _ in range(1_000):
            synthetic_run(store, 12, per_cell=4)  # the store of a long-used app
    finally:
        store.close()
    return ids


def load() -> str:
    """The load average over 1, 5 and 15 minutes (2 cores: above 2 the bench waited for CPU)."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# ---- one browser session ---------------------------------------------------------------------


def _timed(action: Callable[[], None], done: Callable[[], None]) -> float:
    t = time.perf_counter()
    action()
    done()
    return time.perf_counter() - t


def _heading(pg: Any) -> str:
    return str(pg.locator(HEADING).first.inner_text())


def _shows_step(pg: Any, before: str) -> Callable[[], None]:
    def wait() -> None:
        pg.wait_for_function(
            "before => { const h = [...document.querySelectorAll('h3')]"
            ".find(e => e.innerText.startsWith('step ')); return h && h.innerText !== before; }",
            arg=before,
            timeout=WAIT_MS,
        )
        pg.locator(HEADING).first.wait_for(timeout=WAIT_MS)

    return wait


def open_explorer(pg: Any, url: str, run_id: str, node: str | None = None) -> float:
    target = f"{url}Explorer?run={run_id}" + (f"&node={node}" if node else "")

    def shown() -> None:
        pg.wait_for_function(
            "window.__visnet && window.__visnet.body.data.nodes.length > 0", timeout=WAIT_MS
        )
        pg.locator(HEADING).first.wait_for(timeout=WAIT_MS)

    return _timed(lambda: pg.goto(target), shown)


def steps(pg: Any, count: int) -> list[float]:
    """Next, `count` times: from the click until the inspector shows the next step."""
    out = []
    for _ in range(count):
        before = _heading(pg)
        button = pg.get_by_role("button", name="Next ›")
        out.append(_timed(button.click, _shows_step(pg, before)))
    return out


VISIBLE_NODES = """(() => {
  const net = window.__visnet, now = new URLSearchParams(location.search).get("node");
  const box = net.body.container.querySelector("canvas").getBoundingClientRect();
  const ids = net.body.data.nodes.getIds().filter(i => !i.startsWith("~") && i !== now);
  const at = net.getPositions(ids);
  return ids.filter(i => { const p = net.canvasToDOM(at[i]);
    return p.x > 40 && p.y > 40 && p.x < box.width - 40 && p.y < box.height - 40; });
})()"""
"""JS: drawn nodes (not groups, not the selected one) well inside the visible canvas."""
CLICK_WAIT_MS = 20_000
"""A click that selects nothing (it hit a label or an edge) is tried on another node."""


def clicks(pg: Any, count: int) -> list[float]:
    """Clicks on drawn nodes in view until the inspector shows the clicked one."""
    out: list[float] = []
    for node_id in pg.evaluate(VISIBLE_NODES):
        if len(out) == count:
            break
        before = _heading(pg)
        point = pg.evaluate(CLICK_POINT, node_id)
        t = time.perf_counter()
        pg.mouse.click(point["x"], point["y"])
        try:
            pg.wait_for_function(
                "id => new URLSearchParams(location.search).get('node') === id",
                arg=node_id,
                timeout=CLICK_WAIT_MS,
            )
        except PlaywrightTimeout:
            continue
        _shows_step(pg, before)()
        out.append(time.perf_counter() - t)
    return out


def table_filter(pg: Any, text: str) -> float:
    box = pg.get_by_label("Text contains", exact=True)
    box.scroll_into_view_if_needed()
    before = pg.get_by_text(re.compile(r"nodes match")).first.inner_text()

    def done() -> None:
        pg.wait_for_function(
            "before => [...document.querySelectorAll('p')].some(p => p.innerText.includes("
            "'nodes match') && p.innerText !== before)",
            arg=before,
            timeout=WAIT_MS,
        )

    box.fill(text)
    return _timed(lambda: box.press("Enter"), done)


def compare(pg: Any, url: str, a: str, b: str) -> float:
    def done() -> None:
        pg.get_by_text(re.compile(r"^Compared [\d,]+ and [\d,]+ nodes")).first.wait_for(
            timeout=WAIT_MS
        )
        pg.get_by_text(re.compile(r"Aligned steps")).first.wait_for(timeout=WAIT_MS)

    return _timed(lambda: pg.goto(f"{url}Compare?a={a}&b={b}"), done)


# ---- the live view ---------------------------------------------------------------------------


@contextmanager
def fake_models(tmp: Path) -> Iterator[str]:
    """bench/server.py: the root writes LIVE_CODE, sub-calls answer after 50 ms."""
    code = tmp / "live_code.py"
    code.write_text(LIVE_CODE)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "server.py"), str(code), "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def _fill(pg: Any, label: str, value: str) -> None:
    pg.get_by_label(label, exact=True).fill(value)
    pg.get_by_label(label, exact=True).press("Tab")


def start_live_run(pg: Any, url: str, base_url: str) -> None:
    """Start the run from the Run page the way a user does (typed models, pasted text)."""
    pg.goto(url)
    pg.get_by_text("Paste text", exact=True).click()
    _fill(pg, "Paste the context", "x" * (100 * LIVE_CALLS))
    _fill(pg, "Question", "What do the chunks say?")
    for label, model in (("Root model", "openai/root"), ("Sub model", "openai/sub")):
        pg.get_by_label(label, exact=True).click()
        pg.get_by_role("option", name="Other (type a litellm model name)…").click()
        _fill(pg, f"{label}: litellm model name", model)
    pg.get_by_text("Provider settings (API base, key)").click()
    _fill(pg, "API base (for vLLM, llama.cpp server, LM Studio, Ollama)", base_url)
    _fill(pg, "API key (kept in this browser session only; never saved)", "sk-bench")
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_role("button", name="Stop").wait_for(timeout=WAIT_MS)


def _wall(journal: Path) -> float | None:
    """Wall time of a finished run, from its journal (the server holds the database)."""
    _, nodes, _ = read_journal(journal, 0)
    root = next((n for n in reversed(nodes) if n.parent_id is None and n.ended_at), None)
    return None if root is None else root.ended_at - root.started_at  # type: ignore[operator]


def live_run(pg: Any, url: str, base_url: str, traces: Path, watched: bool) -> float:
    before = set((traces / "journal").glob("*.jsonl"))
    start_live_run(pg, url, base_url)
    if not watched:
        pg.goto("about:blank")  # the run goes on in the server; nothing polls it
    journal = next(iter(set((traces / "journal").glob("*.jsonl")) - before))
    deadline = time.monotonic() + WAIT_MS / 1000
    while (wall := _wall(journal)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert wall is not None, "the live run did not finish"
    if watched:
        pg.get_by_text("Open this run in the Explorer").wait_for(timeout=WAIT_MS)
    return wall


# ---- a trial -----------------------------------------------------------------------------------


def trial(traces: Path, ids: dict[str, str], quick: bool) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    got: dict[str, list[float]] = {}
    env = {**os.environ, "RLM_TRACES_DIR": str(traces)}
    log = traces / "streamlit.log"
    with (
        streamlit_server("app.py", cwd=ROOT, log_path=log, env=env) as url,
        sync_playwright() as pw,
    ):
        browser = launch(pw)
        size = {"width": 1400, "height": 900}
        warm = browser.new_context(viewport=size).new_page()
        # the first script runs import the pages' modules: not what a run's first open costs
        warm.goto(f"{url}Runs")
        warm.get_by_role("heading", name="Runs").first.wait_for(timeout=WAIT_MS)
        open_explorer(warm, url, ids["warm-up"])
        names = ["11 nodes", "10,000 sub-calls"]
        names += [] if quick else ["3-level recursion", "200-turn root"]
        for name in names:
            pg = browser.new_context(viewport=size).new_page()
            got.setdefault(f"open {name}", []).append(open_explorer(pg, url, ids[name]))
            got.setdefault(f"next {name}", []).extend(steps(pg, 5))
            got.setdefault(f"click {name}", []).extend(clicks(pg, 3))
            if name == "10,000 sub-calls":
                got.setdefault("filter", []).append(table_filter(pg, "answer 12"))
            pg.context.close()
        pg = browser.new_context(viewport=size).new_page()
        got["compare"] = [compare(pg, url, ids["compare a"], ids["compare b"])]
        if not quick:
            with fake_models(traces) as base_url:
                for watched in (False, True, False, True):
                    key = "live watched" if watched else "live unwatched"
                    got.setdefault(key, []).append(live_run(pg, url, base_url, traces, watched))
        browser.close()
    return got


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{statistics.median(values):.2f} s" + (
        f" ({lo:.2f}–{hi:.2f})" if hi - lo > 0.01 else ""
    )


def table(all_trials: list[dict[str, list[float]]]) -> list[Row]:
    merged: dict[str, list[float]] = {}
    for got in all_trials:
        for key, values in got.items():
            merged.setdefault(key, []).extend(values)
    first = {k: [t[k][0] for t in all_trials if k in t] for k in merged}
    small_open = statistics.median(first["open 11 nodes"])
    small_step = statistics.median(merged["next 11 nodes"] + merged["click 11 nodes"])
    rows: list[Row] = []
    for name in ("11 nodes", "10,000 sub-calls", "3-level recursion", "200-turn root"):
        if f"open {name}" not in merged:
            continue
        opened = statistics.median(first[f"open {name}"]) / small_open
        stepped = merged[f"next {name}"] + merged[f"click {name}"]
        step = statistics.median(stepped) / small_step
        rows += [
            (
                f"Explorer, {name}: cold open (graph and inspector shown)",
                f"{_span(first[f'open {name}'])} ({opened:.2f}x the 11-node run)",
                "≤ 1.5x the 11-node run",
            ),
            (
                f"Explorer, {name}: a step (Next ×5, a click on a node ×3) until shown",
                f"{_span(stepped)} ({step:.2f}x)",
                "≤ 1.5x the 11-node run and < 0.5 s",
            ),
        ]
    rows.append(("node table text filter, 10,000-node run", _span(merged["filter"]), "< 1 s"))
    rows.append(("Compare of two 2,000-node runs until shown", _span(merged["compare"]), "< 3 s"))
    if "live watched" in merged:
        watched = statistics.median(merged["live watched"])
        alone = statistics.median(merged["live unwatched"])
        rows.append(
            (
                f"a {LIVE_CALLS:,}-sub-call run (fake server, 50 ms a call): wall time watched "
                "on the Run page / not watched",
                f"{_span(merged['live watched'])} / {_span(merged['live unwatched'])} "
                f"({100 * (watched / alone - 1):+.0f}%)",
                "< +10%",
            )
        )
    return rows


def app_memory(traces: Path) -> Row:
    """RSS of a process that holds the cached store and rendered the Runs page."""
    code = f"""
import sys, json, resource
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
before = rss()
at = AppTest.from_file({str(ROOT / "pages" / "2_Runs.py")!r}, default_timeout=120).run()
assert not at.exception, at.exception
print(json.dumps([before, rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))
"""
    env = {**os.environ, "RLM_TRACES_DIR": str(traces)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    before, after, peak = json.loads(out.stdout.strip().splitlines()[-1])
    return (
        "app memory: process holding the cached store after the Runs page listed 1,000+ runs",
        f"{after:.0f} MB resident ({after - before:.0f} MB for Streamlit, the store and the "
        f"page; peak {peak:.0f} MB)",
        "",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3, help="fresh servers, one after another")
    parser.add_argument("--quick", action="store_true", help="two runs, no live view")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    traces = Path(tempfile.mkdtemp(prefix="rlm-bench-app-"))
    ids = runs(traces)
    loads = [load()]
    trials = []
    for _ in range(args.trials):
        trials.append(trial(traces, ids, args.quick))
        loads.append(load())
    rows = [*table(trials), app_memory(traces)]
    text = (
        f"Measured with `python bench/bench_app.py --trials {args.trials}` on "
        f"{time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"Chromium at 1400x900; load average before and after each trial: {', '.join(loads)}).\n\n"
        "| measure | result (median, range) | target |\n|---|---|---|\n"
        + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    )
    print(text)
    print(json.dumps(trials), file=sys.stderr)
    if args.write_readme:
        readme = ROOT / "README.md"
        body = readme.read_text()
        block = re.compile(r"(<!-- bench_app.py:start -->\n)(.*?)(<!-- bench_app.py:end -->)", re.S)
        found = block.search(body)
        assert found, "README.md lost its <!-- bench_app.py:start/end --> markers"
        readme.write_text(body[: found.start(2)] + text + "\n" + body[found.end(2) :])


if __name__ == "__main__":
    main()
