"""Shared fixtures: every test gets its own traces dir; the fake server drives litellm."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["HF_HUB_OFFLINE"] = "1"

from fake_openai import FakeOpenAIServer, FakeReply, Responder, by_model  # noqa: E402

from rlm_core import RLM, TraceStore  # noqa: E402
from rlm_core.meta import undeclared  # noqa: E402
from rlm_core.store.journal import read_journal  # noqa: E402
from rlm_core.types import RunResult, RunSummary  # noqa: E402

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

EXPLORER = str(ROOT / "pages" / "1_Explorer.py")


@pytest.fixture(autouse=True)
def traces_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test's own traces folder. Afterwards every node the test's runs journaled must carry
    only the meta keys rlm_core/meta.py declares for its kind (the README table is made from
    them), so the whole suite keeps the documented node metadata true."""
    path = tmp_path / "traces"
    monkeypatch.setenv("RLM_TRACES_DIR", str(path))
    yield path
    for journal in sorted((path / "journal").glob("*.jsonl")):
        _, nodes, _ = read_journal(journal)
        odd = {f"{n.kind}.{key}" for n in nodes for key in undeclared(n)}
        assert not odd, f"meta keys not declared in rlm_core/meta.py: {sorted(odd)}"


def repl(code: str, text: str = "") -> str:
    """A root reply with one ```repl block."""
    return f"{text}\n```repl\n{code.strip()}\n```"


def batch_models(calls: int, delay_s: float) -> Responder:
    """Fake-server models "root" and "sub": the root maps llm_query_batched over `calls` prompts,
    then answers 'done'; each sub-call takes `delay_s` (a big, slow fan-out to watch or stop)."""

    def root(body: dict[str, Any]) -> str:
        if len(body["messages"]) > 2:
            return repl("FINAL('done')")
        return repl(f"answers = llm_query_batched([f'q{{i}}' for i in range({calls})])")

    def sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("an answer", delay_s=delay_s)

    return by_model({"root": root, "sub": sub})


class Scripted:
    """Root replies in order (the last repeats); records the messages each root call saw."""

    def __init__(self, replies: list[str | FakeReply]) -> None:
        self.replies = replies
        self.seen: list[list[dict[str, Any]]] = []

    def __call__(self, body: dict[str, Any]) -> str | FakeReply:
        self.seen.append(body["messages"])
        return self.replies[min(len(self.seen), len(self.replies)) - 1]


def echo_sub(body: dict[str, Any]) -> str:
    prompt = body["messages"][-1]["content"]
    return f"sub saw {len(prompt)} chars: {prompt[:40]}"


@pytest.fixture
def fake() -> Iterator[Callable[..., tuple[RunResult, FakeOpenAIServer, Scripted]]]:
    """fake(root_replies, context, question, sub=echo_sub, **config) -> (result, server, root)."""
    servers: list[FakeOpenAIServer] = []

    def run(
        replies: list[str | FakeReply],
        context: Any = "hello world",
        question: str = "What?",
        sub: Callable[[dict[str, Any]], str | FakeReply] = echo_sub,
        **config: Any,
    ) -> tuple[RunResult, FakeOpenAIServer, Scripted]:
        root = Scripted(replies)
        server = FakeOpenAIServer(by_model({"root": root, "sub": sub}))
        server.__enter__()
        servers.append(server)
        config.setdefault("cell_timeout_s", 10)
        config.setdefault("retries", 0)
        rlm = RLM("openai/root", "openai/sub", server.base_url, api_key="sk-fake", **config)
        return rlm.run(context, question), server, root

    yield run
    for server in servers:
        server.__exit__(None, None, None)


def stored(run_id: str) -> tuple[RunSummary, list[Any]]:
    """The run row and its full nodes, read back from the store."""
    store = TraceStore()
    try:
        run = store.get_run(run_id)
        assert run is not None
        nodes = [store.node(n.node_id) for n in store.nodes(run_id)]
        return run, nodes
    finally:
        store.close()


@pytest.fixture
def fresh_app() -> Iterator[None]:
    """The app caches one store per process: point it at this test's traces dir, close it after."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def explorer_page(**params: str) -> AppTest:
    """The Explorer page run under AppTest with these URL query parameters (run=, node=)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(EXPLORER, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def poll(at: AppTest, done: Callable[[AppTest], bool], what: str, seconds: float = 60) -> AppTest:
    """Re-run a page (whose work goes on in a background thread) until `done`, or fail."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        at.run()
        if done(at):
            return at
        time.sleep(0.3)
    raise AssertionError(f"{what} within {seconds:.0f} s")
