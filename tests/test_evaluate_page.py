"""The Evaluate page under AppTest: an evaluation with demo models from the button to the
side-by-side table, the chart and the CSV; errors before starting; untrusted answers."""

from __future__ import annotations

import pytest
from conftest import ROOT, poll
from streamlit.testing.v1 import AppTest

from rlm_core import TraceStore
from rlm_core.evaluate.evaluator import DID_NOT_FIT, EvalPlan, EvalRow, save_row
from ui.evaluate.page import chart, details, side_by_side

pytestmark = pytest.mark.usefixtures("fresh_app")
PAGE = str(ROOT / "pages" / "6_Evaluate.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def finished(at: AppTest) -> bool:
    return any(c.value == "Finished." for c in at.caption)


def wait_until_finished(at: AppTest, seconds: float = 60) -> AppTest:
    return poll(at, finished, "the evaluation did not finish", seconds)


def test_demo_evaluation_end_to_end() -> None:
    at = page()
    assert not at.exception
    assert any("No evaluation yet" in c.value for c in at.caption)
    at.multiselect(key="ev_tasks").set_value(["needle", "tickets"]).run()
    at.multiselect(key="ev_sizes").set_value([10_000, 300_000]).run()
    assert any(c.value.startswith("12 runs") for c in at.caption)
    at.button(key="ev_start").click().run()
    assert not at.exception and not at.error
    at = wait_until_finished(at)
    assert not at.exception

    table = at.dataframe[0].value
    needle = table[table["task"] == "needle"].set_index("context chars")
    assert list(needle["RLM score"]) == ["1.00", "1.00"]
    assert needle["plain model score"].iloc[0] == "1.00"
    assert needle["plain model score"].iloc[1] == DID_NOT_FIT
    assert needle["RLM cost"].iloc[0] == "$0.0000"
    assert at.get("vega_lite_chart")
    assert at.get("download_button")[0].proto.label == "Download CSV"
    per_question = at.dataframe[1].value
    big = per_question[(per_question["task"] == "needle") & (per_question["context chars"] > 1e5)]
    assert list(big["vs plain"]) == ["win (plain did not fit)"]
    assert list(big["right over seeds"]) == ["1 of 1"]
    answers = at.dataframe[2].value
    assert len(answers) == 12 and answers["trace"].iloc[0].startswith("/Explorer?run=")

    store = TraceStore()
    try:
        count = store.cursor().execute("SELECT count(*) FROM eval_results").fetchone()
        assert count is not None and count[0] == 12
    finally:
        store.close()


def test_unknown_model_is_reported_before_anything_runs() -> None:
    at = page()
    at.text_input(key="ev_extra").set_value("nosuchprovider/model").run()
    at.button(key="ev_start").click().run()
    assert not at.exception
    assert any("Unknown model 'nosuchprovider/model'" in e.value for e in at.error)
    assert "current_eval" not in at.session_state


def test_the_child_root_model_reaches_every_rlm_of_the_evaluation() -> None:
    at = page()
    at.multiselect(key="ev_sizes").set_value([10_000]).run()
    at.multiselect(key="ev_models").set_value(["demo/recursive"]).run()
    at.multiselect(key="ev_methods").set_value(["rlm"]).run()
    at.selectbox(key="ev_child_root").set_value("demo/root").run()
    at.number_input(key="ev_max_depth").set_value(2).run()
    at.button(key="ev_start").click().run()
    at = wait_until_finished(at)
    assert not at.exception and not at.error
    store = TraceStore()
    try:
        [run] = store.list_runs()
        children = [n for n in store.nodes(run.run_id) if n.kind == "run" and n.depth > 0]
    finally:
        store.close()
    assert run.config["child_root_model"] == "demo/root"
    # demo/root maps with llm_query, so its children stop the recursion at one level
    assert {(n.depth, n.meta["root_model"]) for n in children} == {(1, "demo/root")}


def test_nothing_selected_disables_the_button() -> None:
    at = page()
    at.multiselect(key="ev_tasks").set_value([]).run()
    assert at.button(key="ev_start").disabled
    assert any("Pick at least one task" in i.value for i in at.info)


def row(**changes: object) -> EvalRow:
    base: dict[str, object] = dict(
        eval_id="e1",
        task="needle",
        family="needle",
        size=10_000,
        context_chars=10_040,
        question="Q?",
        expected="48213",
        scorer="exact",
        method="rlm",
        model="openai/x",
        sub_model="openai/x",
        status="ok",
        answer="<script>alert(1)</script>",
        score=0.0,
        cost_usd=None,
        wall_s=1.0,
    )
    base.update(changes)
    return EvalRow(**base)  # type: ignore[arg-type]


def test_unknown_cost_and_untrusted_answers_are_shown_safely() -> None:
    rows = [row(), row(method="base", status=DID_NOT_FIT, score=None, answer=None)]
    table = side_by_side(rows)
    assert table["RLM cost"].iloc[0] == "unknown"
    assert table["plain model score"].iloc[0] == DID_NOT_FIT
    assert details(rows)["answer"].iloc[0] == "<script>alert(1)</script>"  # a cell, not HTML
    assert chart(rows) is not None
    assert chart([rows[1]]) is None

    store = TraceStore()
    try:
        for r in rows:
            save_row(store, r)
    finally:
        store.close()
    at = page()
    assert not at.exception
    assert not any("<script>" in m.value for m in at.markdown)
    assert at.dataframe[0].value["RLM cost"].iloc[0] == "unknown"


def test_plan_counts() -> None:
    plan = EvalPlan(("tickets", "stdlib"), (10_000,), (("demo/root", "demo/sub"),))
    assert plan.total == (2 + 3) * 2
