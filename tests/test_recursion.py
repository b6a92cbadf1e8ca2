"""Recursion you can reach: the recursive demo honours max depth (its children recurse too),
and a child root model can be set from Python, the CLI and an evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import stored

from rlm_core import RLM
from rlm_core.cli import main
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


def test_on_a_repetitive_document_the_demo_cuts_chunks_a_sub_model_can_take() -> None:
    """Every line matches the question: the windows around the hits overlap from start to end,
    and merged into one they would hand the whole document down to a refused sub-call."""
    lines = (
        f"Part {i}: the vault code part {i} is {1000 + 7 * i}. " + "filler " * 60
        for i in range(400)
    )
    result = RLM("demo/recursive", "demo/sub", max_depth=2, cell_timeout_s=30).run(
        "\n".join(lines), "What are the vault code parts?"
    )
    assert result.status == "ok" and result.answer and "vault code part" in result.answer
    _, nodes = stored(result.run_id)
    calls = [n for n in nodes if n.kind == "llm_query"]
    assert calls and not [n for n in calls if n.status != "ok"]
    children = [n for n in nodes if n.kind == "run" and n.depth == 1]
    assert len(children) == 4  # the chunk list was cut, not one chunk of everything


def test_the_child_root_model_is_the_sub_model_unless_set_or_the_recursive_demo() -> None:
    assert child_root_model(RLMConfig("openai/a", "openai/b")) == "openai/b"
    assert child_root_model(RLMConfig("demo/recursive", "demo/sub")) == "demo/recursive"
    chosen = RLMConfig("demo/recursive", "demo/sub", child_root_model="demo/root")
    assert child_root_model(chosen) == "demo/root"


def child_run_models(run_id: str) -> dict[int, set[str]]:
    """{depth: root models of the child runs at that depth} of a stored run."""
    _, nodes = stored(run_id)
    found: dict[int, set[str]] = {}
    for n in nodes:
        if n.kind == "run" and n.depth > 0:
            found.setdefault(n.depth, set()).add(n.meta["root_model"])
    return found


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {1: {"demo/recursive"}, 2: {"demo/recursive"}}),
        (["--child-root-model", "demo/root"], {1: {"demo/root"}}),
    ],
)
def test_the_cli_run_takes_a_child_root_model(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: dict[int, set[str]],
) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text(needle_document(20_000))
    argv = ["run", "--context", str(doc), "--query", QUESTION, "--root-model", "demo/recursive"]
    assert main([*argv, "--max-depth", "2", *flags, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"] == NEEDLE
    # demo/root maps over its chunks with llm_query: its children start no child of their own
    assert child_run_models(result["run_id"]) == expected


def test_the_cli_eval_takes_a_child_root_model_and_checks_it_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval", "--task", "needle", "--size", "10000", "--method", "rlm", "--max-depth", "2"]
    argv += ["--model", "demo/recursive", "--child-root-model", "demo/root", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["score"] == 1.0 for r in rows)
    assert child_run_models(rows[0]["run_id"]) == {1: {"demo/root"}}
    assert main([*argv[:-3], "--child-root-model", "nosuch/model"]) == 2
    assert "nosuch/model" in capsys.readouterr().err
