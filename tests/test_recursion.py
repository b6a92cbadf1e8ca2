"""Recursion you can reach: the recursive demo honours max depth (its children recurse too),
and a child root model can be set from Python, the CLI and an evaluation."""

from __future__ import annotations

import pytest
from conftest import stored

from rlm_core import RLM
from rlm_core.config import RLMConfig
from rlm_core.engine.run import child_root_model
from rlm_core.evaluate.examples import NEEDLE, needle_document

QUESTION = "What is the secret code for the vault?"


@pytest.mark.parametrize("max_depth", [1, 2, 3])
def test_the_recursive_demo_draws_one_level_of_child_runs_per_allowed_depth(
    max_depth: int,
) -> None:
    result = RLM("demo/recursive", "demo/sub", max_depth=max_depth, cell_timeout_s=30).run(
        needle_document(20_000), QUESTION
    )
    assert (result.status, result.answer) == ("ok", NEEDLE)
    _, nodes = stored(result.run_id)
    child_runs = [n for n in nodes if n.kind == "run" and n.depth > 0]
    assert {n.depth for n in child_runs} == set(range(1, max_depth + 1))
    assert {n.meta["root_model"] for n in child_runs} == {"demo/recursive"}
    # the deepest children ask the sub model instead of starting a child past max depth
    fallbacks = [n for n in nodes if n.meta.get("fallback_from") == "rlm_query"]
    assert fallbacks and {n.depth for n in fallbacks} == {max_depth + 1}


def test_the_child_root_model_is_the_sub_model_unless_set_or_the_recursive_demo() -> None:
    assert child_root_model(RLMConfig("openai/a", "openai/b")) == "openai/b"
    assert child_root_model(RLMConfig("demo/recursive", "demo/sub")) == "demo/recursive"
    chosen = RLMConfig("demo/recursive", "demo/sub", child_root_model="demo/root")
    assert child_root_model(chosen) == "demo/root"
