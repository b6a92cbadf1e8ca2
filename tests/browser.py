"""Shared pieces of the headless-browser tests: Debian's chromium via Playwright, a Streamlit
server on a free loopback port, and a guard that blocks (and records) every request that would
leave 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)
# Without the background-networking flags Chromium tries to reach Google's hosts at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CLICK_POINT = """(id) => {
  const net = window.__visnet;
  const canvas = net.body.container.querySelector("canvas");
  canvas.scrollIntoView({block: "center"});
  const p = net.canvasToDOM(net.getPositions([id])[id]);
  const r = canvas.getBoundingClientRect();
  return {x: r.left + p.x, y: r.top + p.y};
}"""
"""JS: the page coordinates of a graph node, for a real mouse click on it."""
QUESTION_EMPTY = """() => {
  const boxes = document.querySelectorAll('input[aria-label="Question"]');
  return boxes.length === 1 && boxes[0].value === "";
}"""


def launch(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class Guard:
    """Lets requests to 127.0.0.1 (and data:/blob:) through; records and blocks every other."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.allowed = allowed
        self.foreign: list[str] = []
        self.local: list[str] = []

    def __call__(self, route: Any) -> None:
        url = route.request.url
        local = urlparse(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:"))
        if local or url in self.allowed:
            self.local.append(url)
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


def fill(pg: Any, label: str, value: str) -> None:
    box = pg.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")


def fill_run_form(pg: Any, url: str, base_url: str, question: str) -> None:
    """The Run page with a pasted context, `question`, and the fake server's `openai/root` and
    `openai/sub` typed in as custom models (with its URL as API base)."""
    pg.goto(url)
    pg.get_by_text("Paste text", exact=True).click()
    area = pg.get_by_label("Paste the context", exact=True)
    area.fill(f"Notes for {question} " * 50)
    area.press("Control+Enter")
    # the example's suggested question goes: wait until its input is replaced by an empty one
    pg.wait_for_function(QUESTION_EMPTY)
    fill(pg, "Question", question)
    for label, model in (("Root model", "openai/root"), ("Sub model", "openai/sub")):
        pg.get_by_label(label, exact=True).click()
        pg.keyboard.type("Other (type")  # filters the options down to the free-text one
        pg.keyboard.press("Enter")
        fill(pg, f"{label}: litellm model name", model)
    pg.get_by_text("Provider settings (API base, key)").click()
    fill(pg, "API base (for vLLM, llama.cpp server, LM Studio, Ollama)", base_url)
    fill(pg, "API key (kept in this browser session only; never saved)", "sk-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(
    app: str | Path,
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> Iterator[str]:
    """`streamlit run app` on 127.0.0.1; yields its URL once healthy, stops it afterwards."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(app),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                *(extra or []),
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_healthy(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()) from None
            time.sleep(0.2)
