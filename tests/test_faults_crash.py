"""Crash consistency: SIGKILL the engine process at random points, and the Streamlit server in
the middle of a run started from the browser. The database always opens, every node finished
before the kill is there with its data, the run is `interrupted`, and the app says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeOpenAIServer, FakeReply, by_model, repl
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(ROOT / "bench"))
from bench_faults import Trial, check_store, crash_trials

CHROMIUM = Path("/usr/bin/chromium")
KEY = "sk-e2e-KILLED-SERVER-777"


def assert_consistent(trial: Trial) -> None:
    assert trial.opened
    assert trial.missing == [] and trial.mismatched == [], trial
    assert trial.left_running == [], trial
    assert trial.consistent, trial


def test_sigkill_of_the_engine_at_random_points_loses_nothing_finished() -> None:
    trials = crash_trials(8, seed=11, max_kill_s=1.0)
    for trial in trials:
        assert_consistent(trial)
    # the harness really killed runs mid-way, with finished nodes to check
    assert sum(not t.completed for t in trials) >= 6
    assert sum(t.finished for t in trials) > 50


@pytest.mark.usefixtures("fresh_app")
def test_the_runs_page_and_explorer_show_a_killed_run_as_interrupted(traces_dir: Path) -> None:
    from bench_faults import crash_trial

    trial = crash_trial(traces_dir, 0.3)
    assert not trial.completed
    assert_consistent(trial)
    at = AppTest.from_file(str(ROOT / "pages" / "2_Runs.py"), default_timeout=30).run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["Status"]) == ["⏹️ interrupted"]
    run_id = str(frame["ID"].iloc[0])
    explorer = AppTest.from_file(str(ROOT / "pages" / "1_Explorer.py"), default_timeout=30)
    explorer.query_params["run"] = run_id
    explorer.run()
    assert not explorer.exception
    shown = " ".join(str(e.value) for e in [*explorer.markdown, *explorer.caption])
    assert "interrupted" in shown


# ---- the real server, killed mid-run ---------------------------------------------------------


def start_server(traces: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    from browser import _wait_healthy, free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env={**os.environ, "RLM_TRACES_DIR": str(traces)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    _wait_healthy(url, proc, log)
    return proc, url


def fill(pg: Any, label: str, value: str) -> None:
    box = pg.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")


def choose_custom_model(pg: Any, label: str, model: str) -> None:
    pg.get_by_label(label, exact=True).click()
    pg.get_by_role("option", name="Other (type a litellm model name)…").click()
    fill(pg, f"{label}: litellm model name", model)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_sigkill_of_the_streamlit_server_mid_run(traces_dir: Path, tmp_path: Path) -> None:
    from browser import launch
    from playwright.sync_api import sync_playwright

    def root(body: dict[str, Any]) -> str:
        return repl("for i in range(400):\n    llm_query(f'q{i} ' + context[:30])")

    def sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("answer", delay_s=0.05)

    log = tmp_path / "streamlit.log"
    with FakeOpenAIServer(by_model({"root": root, "sub": sub})) as fake:
        proc, url = start_server(traces_dir, log)
        try:
            with sync_playwright() as pw:
                browser = launch(pw)
                pg = browser.new_page(viewport={"width": 1400, "height": 1000})
                pg.goto(url)
                pg.get_by_text("Paste text", exact=True).click()
                area = pg.get_by_label("Paste the context", exact=True)
                area.fill("The secret code is 4471. " * 40)
                area.press("Control+Enter")
                fill(pg, "Question", "What is the secret code?")
                choose_custom_model(pg, "Root model", "openai/root")
                choose_custom_model(pg, "Sub model", "openai/sub")
                pg.get_by_text("Provider settings (API base, key)").click()
                fill(pg, "API base (for vLLM, llama.cpp server, LM Studio, Ollama)", fake.base_url)
                fill(pg, "API key (kept in this browser session only; never saved)", KEY)
                pg.get_by_role("button", name="Run", exact=True).click()
                deadline = time.time() + 60
                while fake.request_count < 25 and time.time() < deadline:
                    time.sleep(0.05)
                assert fake.request_count >= 25, log.read_text()[-3000:]
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                answered = fake.request_count
                proc, url = start_server(traces_dir, log)
                [journal] = list((traces_dir / "journal").glob("*.jsonl"))
                run_id = journal.stem
                pg.goto(f"{url}Explorer?run={run_id}")
                pg.get_by_text("interrupted").first.wait_for(timeout=30_000)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    trial = check_store(traces_dir, Trial(0.0))
    assert_consistent(trial)
    assert trial.finished >= answered - 3  # one call may have been in flight per worker
    assert any(KEY in str(h) for h in fake.request_headers)  # the typed key was used...
    for path in traces_dir.rglob("*"):  # ...and written nowhere
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
