"""The loop alone, in-process and in milliseconds: scripted models, the fake REPL, no sandbox
process, no HTTP and no litellm. The end-to-end tests (test_engine.py) cover the real parts."""

from __future__ import annotations

from typing import Any

from fake_repl import FakeRepl

from rlm_core import RLM, TraceStore
from rlm_core.models.model import Model, Role
from rlm_core.models.scripted import ScriptedModel


def scripted(turns: list[str], sub: str = "forty-two") -> Any:
    """A model factory: the root replies `turns` in order, every sub-call answers `sub`."""
    seen: list[list[dict[str, Any]]] = []

    def root(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return turns[min(len(seen), len(turns)) - 1]

    def make(name: str, role: Role) -> Model:
        return ScriptedModel(name, root if role == "root" else lambda m: sub)

    make.seen = seen  # type: ignore[attr-defined]
    return make


def block(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_loop_sequences_root_turns_cells_subcalls_and_final(traces_dir: Any) -> None:
    models = scripted(
        [
            block("part = context[:20]\nprint(len(context))"),
            block("answer = llm_query('What is it? ' + part)\nFINAL_VAR('answer')"),
        ]
    )
    result = RLM("fake/root", "fake/sub", models=models, repl=FakeRepl).run(
        "The answer is forty-two. " * 40, "What is the answer?"
    )
    assert result.status == "ok" and result.answer == "forty-two"
    assert result.iterations == 2 and result.llm_calls == 3
    first = models.seen[0]
    assert first[0]["role"] == "system" and "The answer is" not in str(first)  # metadata only
    second = models.seen[1][-1]["content"]
    assert "Output of code block 1:\n1000" in second and "part" in second


def test_loop_out_of_turns_asks_once_more_then_ends_as_a_limit(traces_dir: Any) -> None:
    models = scripted([block("print('still looking')")])
    result = RLM("fake/root", "fake/sub", models=models, repl=FakeRepl, max_iterations=3).run(
        "some text", "Where?"
    )
    assert result.status == "limit" and result.iterations == 3
    assert "FINAL" in models.seen[-1][-1]["content"]  # the last-chance question was asked
    assert result.answer is None  # its last reply was code that never ran: no answer


def test_out_of_turns_a_reply_in_words_or_a_text_final_is_the_partial_answer(
    traces_dir: Any,
) -> None:
    for last, answer in (("It is probably 7.", "It is probably 7."), ("FINAL(7)", "7")):
        models = scripted([block("print('still looking')"), block("x = 1"), last])
        result = RLM("fake/root", "fake/sub", models=models, repl=FakeRepl, max_iterations=2).run(
            "some text", "Where?"
        )
        assert (result.status, result.answer) == ("limit", answer)


def test_every_node_is_recorded_in_order_with_its_parent(traces_dir: Any) -> None:
    models = scripted([block("x = llm_query('hi')\nFINAL(x)")], sub="hello")
    result = RLM("fake/root", "fake/sub", models=models, repl=FakeRepl).run("ctx", "Q?")
    assert result.answer == "hello"
    store = TraceStore()
    try:
        nodes = store.nodes(result.run_id)
    finally:
        store.close()
    assert [n.kind for n in nodes] == ["run", "lm", "code", "llm_query", "final"]
    by_kind = {n.kind: n for n in nodes}
    assert by_kind["llm_query"].parent_id == by_kind["code"].node_id  # under the cell
    assert by_kind["llm_query"].depth == 1 and by_kind["code"].depth == 0
    assert by_kind["final"].output == "hello" and by_kind["run"].status == "ok"
