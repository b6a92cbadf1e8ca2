"""The Run page keeps track of its run (AppTest): Run is disabled while the tab's run goes; the
run's id is in the URL, so a reload finds it live or finished;
Stop gives an answer or says there is none, with one count of model calls; the child root model
picked on the page reaches the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import ROOT, FakeOpenAIServer, batch_models, poll
from streamlit.testing.v1 import AppTest

from rlm_core import TraceStore
from ui.jobs import jobs

pytestmark = pytest.mark.usefixtures("fresh_app")
CALLS = 2_000


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(batch_models(CALLS, delay_s=0.05)) as fake:
        yield fake
        for run_id in jobs().active():  # a failed test must not leave its run going
            jobs().stop(run_id)
            thread = jobs().jobs[run_id].thread
            if thread is not None:
                thread.join(timeout=60)


def app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def long_run_form(server: FakeOpenAIServer) -> AppTest:
    """The page with a pasted context and fake-server models: a run of CALLS slow sub-calls."""
    at = app()
    at.radio(key="ctx_source").set_value("Paste text").run()
    at.text_area(key="ctx_paste").set_value("Some notes. " * 50).run()
    at.text_input[0].set_value("What do the notes say?").run()
    for key, model in (("root_model", "openai/root"), ("sub_model", "openai/sub")):
        at.selectbox(key=key).set_value(at.selectbox(key=key).options[-1]).run()
        at.text_input(key=f"{key}_custom").set_value(model).run()
    at.text_input(key="api_base").set_value(server.base_url).run()
    at.text_input(key="api_key").set_value("sk-fake").run()
    return at


def live(at: AppTest) -> bool:
    return any(b.label == "Stop" for b in at.button) and "model calls" in status(at)


def status(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown if "model calls" in m.value)


def finished(at: AppTest) -> bool:
    return any("Open this run" in str(e.proto) for e in at.get("page_link"))


def test_run_is_disabled_while_the_tabs_run_goes_and_a_reload_finds_it(
    server: FakeOpenAIServer,
) -> None:
    at = long_run_form(server)
    at.button(key="run_button").click().run()
    run_id = at.session_state["current_run"]
    assert at.query_params["run"] == run_id
    at = poll(at, live, "the live status line and Stop did not show")
    assert at.button(key="run_button").disabled  # (a real double click: test_run_page_browser)
    assert jobs().active() == [run_id]

    # a reload is a new session with only the URL: it shows the same live run, and can stop it
    reloaded = poll(app(run=run_id), live, "the reloaded page did not show the live run")
    assert reloaded.button(key="run_button").disabled
    reloaded.button(key="stop_run").click().run()
    reloaded = poll(reloaded, finished, "the run did not stop", seconds=120)
    assert not reloaded.button(key="run_button").disabled
    warning = " ".join(w.value for w in reloaded.warning)
    assert "stopped before the root model wrote an answer" in warning
    assert not any("```" in t.value or "llm_query" in t.value for t in reloaded.text)

    store = TraceStore()
    try:
        run = store.get_run(run_id)
        assert run is not None and len(store.list_runs()) == 1  # one run, not two
    finally:
        store.close()
    calls = run.llm_calls or 0
    assert run.status == "interrupted" and 0 < calls < CALLS
    # the status line reads the run's row: the same count as every other page
    assert f"{calls:,} model calls" in status(reloaded)

    # a reload after the end: the finished run and the link to it
    again = app(run=run_id)
    assert finished(again) and not again.exception
    assert "⏹️ interrupted" in status(again)


def test_an_unknown_run_in_the_url_is_dropped() -> None:
    at = app(run="0123456789abcdef")
    assert not at.exception
    assert "run" not in at.query_params
    assert not at.button(key="run_button").disabled


def test_the_child_root_model_picked_on_the_run_page_reaches_the_run() -> None:
    at = app()
    at.selectbox(key="root_model").set_value("demo/recursive").run()
    at.selectbox(key="child_root_model").set_value("demo/root").run()
    at.number_input(key="lim_max_depth").set_value(3).run()
    at.button(key="run_button").click().run()
    at = poll(at, finished, "the run did not finish")
    store = TraceStore()
    try:
        nodes = store.nodes(at.session_state["current_run"])
    finally:
        store.close()
    children = {(n.depth, n.meta["root_model"]) for n in nodes if n.kind == "run" and n.depth}
    # demo/root maps its chunks with llm_query: the recursion stops after one level
    assert children == {(1, "demo/root")}
