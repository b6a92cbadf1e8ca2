"""The Run page: pick a context, a question and models, run an RLM, watch its graph grow.

The inputs fill the left column; the Run button and the run it started (status, Stop, the growing
graph, then the answer) the right one, so progress shows without scrolling. The tab's run lives in
the URL (`?run=<id>`): a reload finds it in the job runner or the store.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from rlm_core.config import RLMConfig
from ui.common import otlp_target, store
from ui.context_choice import ContextChoice
from ui.jobs import jobs
from ui.run import estimate, live, side_by_side
from ui.run.form import check_models, config_form, context_picker, size_line
from ui.safe import md, safe_id

CURRENT = "current_run"
RUN_PARAM = "run"


def tab_run() -> str | None:
    """This tab's run: the URL's (after a reload, or a shared link), else the one started here;
    the URL follows it."""
    from_url = safe_id(st.query_params.get(RUN_PARAM))
    known = from_url and (jobs().get(from_url) is not None or store().get_run(from_url))
    if known:
        st.session_state[CURRENT] = from_url
    current = st.session_state.get(CURRENT)
    if current is None:
        st.query_params.pop(RUN_PARAM, None)  # a run this store does not know
    elif st.query_params.get(RUN_PARAM) != current:
        st.query_params[RUN_PARAM] = current
    return current


def render() -> None:
    st.title("RLM Tracer")
    st.caption(
        "A recursive language model keeps your document in a Python REPL and lets the root "
        "model write code that reads slices of it and asks sub models about them. Run one, then "
        "step through every node in the Explorer."
    )
    current = tab_run()
    inputs, progress = st.columns([5, 4], gap="large")
    with inputs:
        choice = context_picker()
        if choice is not None:
            st.caption(f"**{md(choice.label)}** · {size_line(choice)}")
        suggested = choice.questions[0] if choice and choice.questions else ""
        question = st.text_input("Question", value=suggested, key=f"question_{suggested}")
        if choice and len(choice.questions) > 1:
            st.caption("Suggested: " + " · ".join(choice.questions))
        config = config_form()
        ready = choice is not None and bool(question.strip()) and config is not None
        if ready and choice is not None and config is not None:
            estimate.estimate(config.root_model, config.sub_model, choice.chars)
    with progress:
        busy = current is not None and live.owned_and_running(current)
        clicked = st.button("Run", type="primary", disabled=not ready or busy, key="run_button")
        # A second click can arrive before the browser has drawn Run disabled: `busy` was read
        # in this script run, after the first click's run had started, so it starts nothing.
        if clicked and not busy and choice is not None and config is not None:
            current = start(choice, question.strip(), config) or current
        if current is not None:
            live.render(current)
        else:
            st.caption("The run's status, its growing graph and Stop show here.")
    side_by_side.render(choice, question.strip(), config)


def start(choice: ContextChoice, question: str, config: RLMConfig) -> str | None:
    """Start a run as this tab's run; None (with the reason shown) when a model is unusable."""
    if not check_models(config):
        return None
    run_id = live.start_run(jobs(), store(), choice.value, question, config, otlp_target())
    st.session_state[CURRENT] = run_id
    # what the verdict needs, without keeping a second copy of the document
    st.session_state["expected"] = (run_id, replace(choice, value=None), question)
    st.query_params[RUN_PARAM] = run_id
    return run_id
