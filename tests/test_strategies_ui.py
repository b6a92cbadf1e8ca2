"""Strategies in the app under AppTest: the Run page's strategies side by side, strategies as
methods of the Evaluate grid, and the Learn page's Questions section."""

from __future__ import annotations

import pytest
from conftest import ROOT, poll
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("fresh_app")


def side_by_side_done(at: AppTest) -> bool:
    frames = at.dataframe
    return bool(frames) and not frames[0].value["status"].str.contains("running").any()


def test_strategies_side_by_side_on_the_run_page() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    at.multiselect(key="strategies_pick").set_value(["plain", "rag", "rlm-no-subcalls"]).run()
    at.button(key="strategies_button").click().run()
    assert not at.exception and not at.error
    at = poll(at, side_by_side_done, "the strategies did not finish")
    assert not at.exception
    table = at.dataframe[0].value.set_index("strategy")
    assert list(table.index) == ["plain (cut to fit)", "RAG (BM25)", "RLM, no sub-calls"]
    assert "48213" in table.loc["RAG (BM25)", "answer"]
    assert table.loc["RAG (BM25)", "correct"].startswith("correct")
    assert table.loc["plain (cut to fit)", "correct"].startswith("incorrect")
    assert "never shown to the model" in table.loc["plain (cut to fit)", "note"]
    assert set(table["cost"]) == {"$0.0000"}
    assert all(link.startswith("/Explorer?run=") for link in table["trace"])
    assert any("did not fit the window and were cut" in w.value for w in at.warning)


def test_side_by_side_needs_a_strategy() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.multiselect(key="strategies_pick").set_value([]).run()
    assert at.button(key="strategies_button").disabled


def test_strategies_are_a_dimension_of_the_evaluate_grid() -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "6_Evaluate.py"), default_timeout=60).run()
    at.multiselect(key="ev_sizes").set_value([10_000]).run()
    at.multiselect(key="ev_methods").set_value(["rag", "summarize", "rlm-no-subcalls"]).run()
    at.button(key="ev_start").click().run()
    at = poll(
        at,
        lambda a: any(c.value == "Finished." for c in a.caption),
        "the evaluation did not finish",
    )
    assert not at.exception
    table = at.dataframe[0].value
    assert table["RAG (BM25) score"].iloc[0] == "1.00"
    assert table["summarize score"].iloc[0] == "1.00"
    assert "RLM, no sub-calls cost" in table.columns


def learn_script() -> None:
    from ui.learn import questions

    questions.render()


def test_learn_questions_run_each_pair_and_show_the_traces() -> None:
    at = AppTest.from_function(learn_script, default_timeout=90).run()
    assert not at.exception and not at.dataframe  # nothing runs before a question is picked
    at.radio(key="learn_question").set_value("rag").run()
    table = at.dataframe[0].value
    assert list(table["strategy"]) == ["RLM", "RAG (BM25)"]
    read = table.set_index("strategy")["read by code"]
    assert read["RLM"] == "100%" and read["RAG (BM25)"] == "0%"
    # the pair shows what its text claims: RAG's retrieval misses, the RLM does not
    check = table.set_index("strategy")["check"]
    assert check["RLM"].startswith("correct") and check["RAG (BM25)"].startswith("incorrect")
    assert any(
        "RAG (BM25) missed the expected answer; RLM found it" in m.value for m in at.markdown
    )

    at.radio(key="learn_question").set_value("prompt").run()
    assert not at.exception
    rlm_first, agent_first = (c.value for c in at.code)
    assert "loaded in the REPL as `context`" in rlm_first and "Document:" not in rlm_first
    assert "Document:\n" in agent_first and "more chars]" in agent_first
    sizes = [
        int(c.value.split(": ")[1].split()[0].replace(",", ""))
        for c in at.caption
        if c.value.startswith("The root's first message")
    ]
    assert sizes[0] < 1_000 < 30_000 < sizes[1]  # metadata only vs the whole document

    at.radio(key="learn_question").set_value("depth").run()
    depth1, depth2 = (c.value for c in at.code)
    assert "RLM at depth 2" not in depth1 and "RLM at depth 2" in depth2

    for key in ("summary", "codeact"):
        at.radio(key="learn_question").set_value(key).run()
        assert not at.exception
        assert len(at.dataframe[0].value) == 2
    assert "compacted 1 time" in at.dataframe[0].value["note"].iloc[1]
    assert all("/Explorer?run=" in m.value for m in at.markdown if "Open this trace" in m.value)
