"""Example generators (ground truth checked independently of them), scoring rules, and the
evaluator with demo models and the fake OpenAI-compatible server."""

from __future__ import annotations

import ast
import csv
import io
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, FakeReply

from rlm_core import TraceStore
from rlm_core.cli import main
from rlm_core.config import RLMConfig
from rlm_core.context import size_of
from rlm_core.evaluate.evaluator import (
    DID_NOT_FIT,
    EvalPlan,
    Evaluator,
    list_evals,
    load_rows,
    rows_csv,
    summary,
)
from rlm_core.evaluate.examples import EXAMPLES, stdlib_root
from rlm_core.evaluate.scoring import exact, numeric, pairs_f1, parse_pairs, score

# ---- generators: size, determinism, and answers found another way ------------------------


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_is_deterministic_and_about_the_asked_size(name: str) -> None:
    example = EXAMPLES[name]
    for size in (10_000, 200_000):
        context = example.build(size)
        assert context == example.build(size)
        chars = size_of(context)
        if name == "stdlib":  # whole files: at least the size, overshooting by under one file
            assert chars >= size
        else:
            assert size <= chars <= size * 1.01 + 200
        assert len(example.answers(context)) == len(example.questions)


@pytest.mark.parametrize("name", ["needle", "needle_logs", "needle_json"])
def test_needles_appear_exactly_once_and_match_the_answer(name: str) -> None:
    text = EXAMPLES[name].build(300_000)
    assert text.lower().count("secret code") == 1
    at = text.index("vault is ") + len("vault is ")
    digits = "".join(itertools.takewhile(str.isdigit, text[at:]))
    assert EXAMPLES[name].answers(text) == (digits,)


def test_ticket_counts_match_a_regex_count() -> None:
    text = EXAMPLES["tickets"].build(100_000)
    labels = Counter(re.findall(r"\| label: (\w+) \|", text))
    assert sum(labels.values()) == len(text.splitlines())
    rarest = min(labels, key=lambda k: labels[k])
    assert EXAMPLES["tickets"].answers(text) == (str(labels["returns"]), rarest)


def test_pairs_match_a_brute_force_over_every_pair_of_users() -> None:
    text = EXAMPLES["pairs"].build(100_000)
    users = [
        (int(m[1]), m[2], m[3])
        for m in re.finditer(r"^user (\d+) .*?city: (\w+) \| role: (\w+)", text, re.MULTILINE)
    ]
    assert len(users) == len(text.splitlines())
    truth = {
        (a[0], b[0])
        for a, b in itertools.combinations(users, 2)
        if a[2] == b[2] == "admin" and a[1] == b[1]
    }
    assert truth
    assert parse_pairs(EXAMPLES["pairs"].answers(text)[0]) == truth


def test_code_answers_match_the_syntax_tree_and_the_imported_modules() -> None:
    import concurrent.futures.thread
    import fnmatch
    import inspect

    codebase = EXAMPLES["stdlib"].build(300_000)
    where_def, where_class, errors = EXAMPLES["stdlib"].answers(codebase)
    root = stdlib_root()
    assert Path(inspect.getsourcefile(fnmatch.fnmatchcase) or "") == root / where_def
    pool = concurrent.futures.thread.ThreadPoolExecutor
    assert Path(inspect.getsourcefile(pool) or "") == root / where_class
    count = 0
    for source in codebase.values():
        tree = ast.parse(source)
        count += sum(isinstance(n, ast.ClassDef) and n.name.endswith("Error") for n in tree.body)
    assert int(errors) == count


# ---- scoring -----------------------------------------------------------------------------


def test_exact_match_normalizes_and_accepts_short_sentences() -> None:
    assert exact("`48213`.", "48213") == 1.0
    assert exact("The secret code for the vault is 48213.", "48213") == 1.0
    assert exact("482130", "48213") == 0.0
    assert exact("It is in lib/fnmatch.py", "fnmatch.py") == 0.0
    assert exact(" ".join(["maybe 48213 or"] * 20), "48213") == 0.0  # a list of guesses
    assert exact("Returns", "returns") == 1.0


def test_numeric_partial_credit_is_three_quarters_per_unit_of_error() -> None:
    assert numeric("630", "630") == 1.0
    assert numeric("There are 632 tickets.", "630") == pytest.approx(0.75**2)
    assert numeric("1,234", "1234") == 1.0
    assert numeric("no idea", "3") == 0.0


def test_pairs_f1() -> None:
    assert pairs_f1("1, 2\n3, 4", "(2, 1)\n4 & 3") == 1.0
    assert pairs_f1("1, 2\n5, 6", "1, 2\n3, 4") == pytest.approx(0.5)
    assert pairs_f1("1, 2", "1, 2\n3, 4\n5, 6\n7, 8") == pytest.approx(0.4)
    assert pairs_f1("none", "none") == 1.0
    assert pairs_f1("9, 10", "none") == 0.0


def test_score_dispatch() -> None:
    assert score("numeric", None, "3") == 0.0
    assert score("exact", "  ", "x") == 0.0
    with pytest.raises(ValueError, match="unknown scoring rule"):
        score("fuzzy", "a", "a")


# ---- the evaluator -----------------------------------------------------------------------


def test_demo_eval_scores_rlm_and_plain_model_and_marks_what_did_not_fit() -> None:
    plan = EvalPlan(("needle",), (10_000, 200_000), (("demo/root", "demo/sub"),))
    store = TraceStore()
    try:
        progress: list[tuple[int, int]] = []
        evaluator = Evaluator(plan, store, on_progress=lambda d, t, label: progress.append((d, t)))
        rows = evaluator.run()
        by = {(r.size, r.method): r for r in rows}
        assert len(rows) == plan.total == 4
        assert by[10_000, "rlm"].score == by[10_000, "base"].score == 1.0
        assert by[200_000, "rlm"].score == 1.0 and by[200_000, "rlm"].run_id
        assert by[200_000, "base"].status == DID_NOT_FIT and by[200_000, "base"].score is None
        assert "window is 32,000" in str(by[200_000, "base"].error)
        assert progress[-1] == (4, 4)
        stored = load_rows(store, evaluator.eval_id)
        assert [r.row_id for r in stored] == [r.row_id for r in rows]
        assert list_evals(store)[0]["rows"] == 4
        assert store.get_run(str(by[200_000, "rlm"].run_id)) is not None
    finally:
        store.close()
    lines = summary(rows)
    assert [(s["size"], s["method"], s["score"], s["cost_usd"]) for s in lines] == [
        (10_000, "RLM", 1.0, 0.0),
        (10_000, "plain model", 1.0, 0.0),
        (200_000, "RLM", 1.0, 0.0),
        (200_000, "plain model", None, None),
    ]
    table = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert len(table) == 4 and table[3]["status"] == DID_NOT_FIT and table[3]["score"] == ""


def test_plain_model_over_http_unknown_window_and_context_overflow() -> None:
    replies = iter(
        [
            FakeReply("48213", usage={"prompt_tokens": 10, "completion_tokens": 2}),
            FakeReply(status=400, content="This model's maximum context length is 8192 tokens."),
        ]
    )
    with FakeOpenAIServer(lambda body: next(replies)) as server:
        config = RLMConfig(api_base=server.base_url, api_key="sk-test", retries=0)
        plan = EvalPlan(
            ("needle",),
            (10_000, 20_000),
            (("openai/local-x", "openai/local-x"),),
            config,
            ("base",),
        )
        rows = Evaluator(plan, None).run()
    assert [r.status for r in rows] == ["ok", DID_NOT_FIT]
    assert rows[0].score == 1.0 and rows[0].cost_usd is None  # unpriced: unknown, not $0
    assert summary(rows)[0]["cost_usd"] is None


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="unknown or no tasks"):
        EvalPlan(("nope",), (10_000,), (("demo/root", "demo/sub"),))
    with pytest.raises(ValueError, match="sizes"):
        EvalPlan(("needle",), (10,), (("demo/root", "demo/sub"),))
    with pytest.raises(ValueError, match="methods"):
        EvalPlan(("needle",), (10_000,), (("demo/root", "demo/sub"),), methods=("x",))


def test_eval_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "e.csv"
    argv = ["eval", "--task", "needle_logs", "--size", "10000", "--csv", str(out_csv), "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["method"], r["score"]) for r in rows} == {("rlm", 1.0), ("base", 1.0)}
    assert len(out_csv.read_text().splitlines()) == 3
