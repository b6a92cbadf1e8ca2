"""Replay reproduces a run with no model calls; forks replay up to the fork point, then go live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import FakeOpenAIServer, by_model, echo_sub, repl

from rlm_core import RLM, TraceStore
from rlm_core.engine.parsing import code_blocks, replace_code_block
from rlm_core.engine.replay import ask_again, fork_run, replay_run
from rlm_core.exchange.jsonl import import_file
from rlm_core.types import Node

NEEDLE_TEXT = (
    "Filler sentence about the weather. " * 400
    + "The secret code is 48213. "
    + ("More filler about bread and cheese. " * 400)
)
COMPARED = (
    "kind",
    "depth",
    "status",
    "model",
    "input",
    "output",
    "code",
    "stdout",
    "error",
    "context_spans",
    "tokens_in",
    "tokens_out",
)


def shape(store: TraceStore, run_id: str) -> list[tuple[Any, ...]]:
    nodes = [store.node(n.node_id) for n in store.nodes(run_id)]
    return [tuple(getattr(n, f) for f in COMPARED) for n in nodes if n is not None]


def test_replay_reproduces_the_trace_without_calling_any_model(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        original = RLM("demo/root", "demo/sub", store=store).run(
            NEEDLE_TEXT, "What is the secret code?"
        )
        replayed = replay_run(store, original.run_id)
        assert replayed.status == "ok" and replayed.answer == original.answer
        assert shape(store, replayed.run_id) == shape(store, original.run_id)
        nodes = store.nodes(replayed.run_id)
        assert nodes[0].meta["replay_of"] == original.run_id
        calls = [n for n in nodes if n.kind in ("lm", "llm_query")]
        assert calls and all(n.meta.get("replayed") and n.cost_usd == 0.0 for n in calls)
    finally:
        store.close()


def fork_server_root(body: dict[str, Any]) -> str:
    """A live root for the fork: answers from whatever the last output said."""
    last = body["messages"][-1]["content"]
    return repl(f"FINAL({'live saw ' + str(len(last))!r})")


def test_fork_with_edited_code_replays_before_and_runs_the_new_code(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        original = RLM("demo/root", "demo/sub", store=store).run(
            NEEDLE_TEXT, "What is the secret code?"
        )
        nodes = store.nodes(original.run_id)
        second_code = [n for n in nodes if n.kind == "code"][1]
        with FakeOpenAIServer(by_model({"root": fork_server_root, "sub": echo_sub})) as server:
            forked = fork_run(
                store,
                original.run_id,
                second_code.node_id,
                code="import re\nhits = [m.start() for m in re.finditer('secret', text)]\n"
                "print('FORKED', hits)",
                changes={"root_model": "openai/root", "api_base": server.base_url},
                api_key="k",
            )
            live_requests = len(server.requests)
        assert forked.status == "ok"
        assert str(forked.answer).startswith("live saw")
        assert live_requests == 1  # only the turn after the fork point went to a model
        new_nodes = store.nodes(forked.run_id)
        assert new_nodes[0].meta["forked_from"]["node_id"] == second_code.node_id
        codes = [n for n in new_nodes if n.kind == "code"]
        assert codes[0].code == next(n for n in nodes if n.kind == "code").code
        assert "FORKED" in (codes[1].stdout or "")
        lms = [n for n in new_nodes if n.kind == "lm"]
        assert lms[0].meta.get("replayed") and lms[1].meta.get("finish_reason") == "edited"
        assert not lms[-1].meta.get("replayed") and lms[-1].model == "openai/root"
    finally:
        store.close()


def test_fork_with_an_edited_response_and_a_replay_that_diverges(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        original = RLM("demo/root", "demo/sub", store=store).run(
            NEEDLE_TEXT, "What is the secret code?"
        )
        first_lm = next(n for n in store.nodes(original.run_id) if n.kind == "lm")
        forked = fork_run(
            store, original.run_id, first_lm.node_id, response="I already know.\nFINAL(forty-two)"
        )
        assert (forked.status, forked.answer) == ("ok", "forty-two")
        assert forked.llm_calls == 1 and forked.cost_usd == 0.0
    finally:
        store.close()


def test_replace_code_block_and_the_playground() -> None:
    reply = "a\n```repl\nx = 1\n```\nb\n```python\ny = 2\n```"
    assert code_blocks(replace_code_block(reply, 2, "y = 3")) == ["x = 1\n", "y = 3\n"]
    with FakeOpenAIServer(by_model({"sub": echo_sub})) as server:
        done = ask_again("Just this prompt", "openai/sub", api_base=server.base_url, api_key="k")
    assert done.text.startswith("sub saw 16 chars")
    assert Node.__dataclass_fields__  # the playground needs no trace node


def test_runs_recorded_before_the_output_cap_replay_with_the_cap_they_showed(
    traces_dir: Path,
) -> None:
    """The bundled Learn runs were recorded when every cell's output was cut to the configured
    20,000 characters; the demo models' window would now give 16,000. A replay keeps what the
    recorded run showed, or its first call would not match."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "learn"
    store = TraceStore(traces_dir)
    try:
        for path in sorted(examples.glob("*.jsonl")):
            run_id = import_file(store, path).run_id
            assert "output_chars" not in store.nodes(run_id)[0].meta
            replayed = replay_run(store, run_id)
            assert replayed.status == "ok", (path.name, replayed.error)
            assert replayed.answer == store.get_run(run_id).answer  # type: ignore[union-attr]
            assert store.nodes(replayed.run_id)[0].meta["output_chars"] == 20_000
    finally:
        store.close()
