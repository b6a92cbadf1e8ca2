"""Evaluate shows what matters for RLMs: per question a win or loss against the plain model, the
spread over seeds, cost and time next to the plain call, and runs that were no RLM at all."""

from __future__ import annotations

from rlm_core.config import RLMConfig
from rlm_core.evaluate.evaluator import DID_NOT_FIT, EvalPlan, EvalRow, Evaluator, load_rows
from rlm_core.evaluate.report import report_lines, rlm_vs_plain
from rlm_core.store.trace_store import TraceStore


def row(method: str, score: float | None, **fields: object) -> EvalRow:
    base = dict(
        eval_id="e",
        task="needle",
        family="needle",
        size=1000,
        context_chars=1000,
        question="Q?",
        expected="1",
        scorer="exact",
        method=method,
        model="m",
        sub_model=None,
        status="ok",
        score=score,
        cost_usd=0.02,
        wall_s=10.0,
    )
    return EvalRow(**{**base, **fields})  # type: ignore[arg-type]


def test_seeds_spread_win_loss_ratios_and_flags() -> None:
    rows = [
        row("rlm", 1.0, seed=1, sub_calls=2, child_runs=0, cost_usd=0.01, wall_s=20.0),
        row("rlm", 0.0, seed=2, sub_calls=0, child_runs=0, cost_usd=0.01, wall_s=40.0),
        row("rlm", 1.0, seed=3, sub_calls=1, child_runs=1, cost_usd=0.01, wall_s=30.0),
        row("base", 0.0),
    ]
    (line,) = rlm_vs_plain(rows)
    assert line["right over seeds"] == "2 of 3" and line["spread"] == "0.00–1.00"
    assert (line["RLM score"], line["plain score"], line["vs plain"]) == (0.67, 0.0, "win")
    assert (line["cost ratio"], line["time ratio"]) == (0.5, 3.0)
    assert line["flags"] == "no sub-call in 1 of 3; never recursed in 2 of 3"
    lost = rlm_vs_plain([row("rlm", 0.0), row("base", 1.0)])[0]
    assert lost["vs plain"] == "loss" and lost["flags"] == ""
    unfit = rlm_vs_plain([row("rlm", 1.0), row("base", None, status=DID_NOT_FIT, cost_usd=None)])
    assert unfit[0]["vs plain"] == "win (plain did not fit)" and unfit[0]["cost ratio"] is None
    assert "ratio unknown" in report_lines([row("rlm", 1.0), row("base", None, cost_usd=None)])[0]


def test_an_evaluation_runs_the_rlm_once_per_seed_and_the_plain_model_once() -> None:
    plan = EvalPlan(("needle",), (10_000,), (("demo/root", "demo/sub"),), RLMConfig(), seeds=(1, 2))
    assert plan.total == 3
    store = TraceStore()
    try:
        Evaluator(plan, store).run()
        rows = load_rows(store)
    finally:
        store.close()
    rlm = sorted((r.seed, r.sub_calls, r.child_runs) for r in rows if r.method == "rlm")
    assert [seed for seed, _, _ in rlm] == [1, 2]
    assert all(calls and calls > 0 and children == 0 for _, calls, children in rlm)
    assert [r.seed for r in rows if r.method == "base"] == [1]
