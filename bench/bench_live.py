"""What watching a run costs the run: a 2,000-sub-call run started from the Run page in headless
Chromium, watched (the page stays open: status line, live graph) or not (the page is closed right
after Run), alternately, on one `streamlit run app.py` and the tests' fake server.

`python bench/bench_live.py [--calls N] [--delay S] [--trials N]` prints each run's wall time (from
its journal) and the server's CPU seconds, then the medians. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import fill_run_form, launch, streamlit_server  # noqa: E402
from fake_openai import FakeOpenAIServer, FakeReply, by_model  # noqa: E402


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(url: str) -> int:
    port = url.rstrip("/").rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", f"server.port {port}"], capture_output=True, text=True)
    return int(found.stdout.split()[0])


def wall_s(journal: Path) -> float:
    """Seconds from the run node's start to its end, once the journal shows it ended."""
    while True:
        root = None
        for line in journal.read_text().splitlines()[1:]:
            try:
                node = json.loads(line)
            except ValueError:
                continue  # a line being written
            if node.get("kind") == "run" and node.get("parent_id") is None:
                root = node
        if root is not None and root["status"] != "running":
            return float(root["ended_at"] - root["started_at"])
        time.sleep(0.2)


def one_run(context: Any, url: str, base_url: str, journals: Path, watched: bool) -> float:
    pg = context.new_page()
    fill_run_form(pg, url, base_url, f"{'watched' if watched else 'unwatched'} {time.time()}?")
    before = set(journals.glob("*.jsonl"))
    pg.get_by_role("button", name="Run", exact=True).click()
    while not (new := set(journals.glob("*.jsonl")) - before):
        time.sleep(0.1)
    if not watched:
        pg.close()
    wall = wall_s(new.pop())
    if watched:
        pg.close()
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--delay", type=float, default=0.05, help="sub-call latency, seconds")
    parser.add_argument("--trials", type=int, default=4, help="runs of each kind")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    def root(body: dict[str, Any]) -> str:
        if len(body["messages"]) > 2:
            return "```repl\nFINAL('done')\n```"
        prompts = f"[f'q{{i}}' for i in range({args.calls})]"
        return f"```repl\nanswers = llm_query_batched({prompts})\n```"

    def sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("an answer", delay_s=args.delay)

    results: dict[str, list[tuple[float, float]]] = {"watched": [], "unwatched": []}
    with tempfile.TemporaryDirectory(prefix="rlm-bench-live-") as tmp:
        traces = Path(tmp) / "traces"
        env = {**os.environ, "RLM_TRACES_DIR": str(traces)}
        with (
            FakeOpenAIServer(by_model({"root": root, "sub": sub})) as fake,
            streamlit_server("app.py", cwd=ROOT, log_path=Path(tmp) / "st.log", env=env) as url,
            sync_playwright() as pw,
        ):
            browser = launch(pw)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            pid = server_pid(url)
            one_run(context, url, fake.base_url, traces / "journal", True)  # warm-up (imports)
            for trial in range(args.trials):
                order = (False, True) if trial % 2 == 0 else (True, False)
                for watched in order:
                    cpu = cpu_s(pid)
                    wall = one_run(context, url, fake.base_url, traces / "journal", watched)
                    kind = "watched" if watched else "unwatched"
                    results[kind].append((wall, cpu_s(pid) - cpu))
                    print(f"{kind:<9} wall {wall:6.2f} s  server CPU {results[kind][-1][1]:5.1f} s")
            browser.close()
    medians = {
        kind: [statistics.median(r[i] for r in runs) for i in range(2)]
        for kind, runs in results.items()
    }
    (w_wall, w_cpu), (u_wall, u_cpu) = medians["watched"], medians["unwatched"]
    print(
        f"median wall: watched {w_wall:.2f} s, unwatched {u_wall:.2f} s "
        f"({(w_wall / u_wall - 1) * 100:+.1f}%); server CPU {w_cpu:.1f} s vs {u_cpu:.1f} s"
    )


if __name__ == "__main__":
    main()
