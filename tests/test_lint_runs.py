"""Every failure-linter rule on real runs (scripted root, real REPL worker): a run built to
trigger the rule (labelled positive) and a realistic run that must not (labelled negative)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import stored

from rlm_core import RLM
from rlm_core.analysis.lint import lint
from rlm_core.evaluate.examples import NEEDLE, needle_document, records_document
from rlm_core.models.model import Model, Role
from rlm_core.models.scripted import ScriptedModel

DOC = needle_document(50_000)
"""The needle lies inside one 5,000-character chunk (at 33,286)."""
TICKETS = records_document(60_000)
SMALL_WINDOW = "openai/gpt-3.5-turbo"
"""A sub model whose window litellm knows (16k tokens): the oversized-prompt rule can judge."""


def cell(code: str) -> str:
    return f"```repl\n{code}\n```"


def models(turns: list[str], sub: Callable[[str], str] = lambda p: "it says nothing new") -> Any:
    """Each root model (one per RLM) replies `turns` in order, the last one repeating."""

    def make(name: str, role: Role) -> Model:
        if role != "root":
            return ScriptedModel(name, lambda m: sub(m[-1]["content"]))
        replies = iter(turns)
        return ScriptedModel(name, lambda m: next(replies, turns[-1]))

    return make


MAP = cell(
    "chunks = [context[i:i + 5000] for i in range(0, len(context), 5000)]\n"
    "answers = llm_query_batched([f'Find the code.\\n{c}' for c in chunks])\n"
    "answer = next((a for a in answers if 'code' in a), 'none')\nFINAL_VAR('answer')"
)
"""The standard map: the same instruction over different chunks, every answer kept."""
RECURSE = cell(
    "parts = [context[i:i + 20000] for i in range(0, len(context), 20000)]\n"
    "answers = rlm_query_batched(['What is the code?'] * len(parts), contexts=parts)\n"
    "FINAL(' / '.join(answers))"
)
CHILD = cell("FINAL(llm_query('Find the code.\\n' + context[:20000]))")


def run(turns: list[str], context: str = DOC, *, child: bool = False, **config: Any) -> list[str]:
    """The rules the linter finds on the run (with the needle as the thing to look for)."""
    make = models(turns, lambda p: "found: the code" if NEEDLE in p else "it says nothing new")
    if child:  # child RLMs (named s/child) answer with one sub-call over their context
        make = _by_name("s/child", models([CHILD]), make)
    sub = config.pop("sub_model", "s/sub")
    result = RLM("s/root", sub, models=make, cell_timeout_s=20, **config).run(context, "Code?")
    assert result.status in ("ok", "limit")
    _, nodes = stored(result.run_id)
    return sorted({f.rule for f in lint(nodes, [NEEDLE], context)})


def _by_name(name: str, special: Any, usual: Any) -> Any:
    def make(model: str, role: Role) -> Model:
        return (special if model == name else usual)(model, role)

    return make


CASES: list[tuple[str, list[str], dict[str, Any], bool]] = [
    # rule, the root's turns, config, fires
    ("final_unread", [cell("FINAL('48213')")], {}, True),
    ("final_unread", [MAP], {}, False),
    ("unused_result", [cell("llm_query('Say hi.')\nFINAL('done')")], {}, True),
    ("unused_result", [MAP], {}, False),
    (
        "repeated_call",
        [cell("a = llm_query('Code?')\nb = llm_query('Code?')\nFINAL(a + b)")],
        {},
        True,
    ),
    ("repeated_call", [MAP], {}, False),
    ("repeated_call", [RECURSE], {"child": True, "child_root_model": "s/child"}, False),
    (
        "prompt_too_large",
        [cell("FINAL(llm_query(context * 2))")],
        {"sub_model": SMALL_WINDOW},
        True,
    ),
    ("prompt_too_large", [MAP], {"sub_model": SMALL_WINDOW}, False),
    ("repeated_error", [cell("print(undefined_name)")], {"max_iterations": 3}, True),
    ("repeated_error", [MAP], {}, False),
    ("no_progress", [cell("print(len(context))")], {"max_iterations": 3}, True),
    ("no_progress", [MAP], {}, False),
    ("limit_hit", [cell("print(len(context))")], {"max_iterations": 2}, True),
    ("limit_hit", [MAP], {}, False),
    (
        "ignored_text_final",
        ["I know it.\nFINAL(48213)\n" + cell("print(len(context))"), MAP],
        {},
        True,
    ),
    ("ignored_text_final", [MAP], {}, False),
    ("needle_unseen", [cell("n = context.count('vault')\nFINAL(str(n))")], {}, True),
    ("needle_unseen", [MAP], {}, False),
]


@pytest.mark.parametrize(("rule", "turns", "config", "fires"), CASES)
def test_rule_on_a_real_run(
    rule: str, turns: list[str], config: dict[str, Any], fires: bool
) -> None:
    found = run(turns, **dict(config))
    assert (rule in found) == fires, found


def test_a_refused_guess_on_a_small_model_run() -> None:
    empty_search = cell("print([l for l in context.splitlines() if 'zebra' in l])")
    found = run([empty_search, "FINAL(12)", MAP], prompt="small")
    assert "refused_guess" in found
    assert "refused_guess" not in run([MAP], prompt="small")


def test_a_needle_that_is_not_there() -> None:
    found = run([MAP], context=TICKETS)
    assert "needle_absent" in found and "needle_unseen" not in found
