"""The Run page: pick a context, a question and models, run an RLM, watch its graph grow."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from ui.common import store
from ui.jobs import jobs
from ui.run import estimate, live, side_by_side
from ui.run.form import check_models, config_form, context_picker, size_line
from ui.safe import md


def render() -> None:
    st.title("RLM Tracer")
    st.caption(
        "A recursive language model keeps your document in a Python REPL and lets the root "
        "model write code that reads slices of it and asks sub models about them. Run one, then "
        "step through every node in the Explorer."
    )
    choice = context_picker()
    if choice is not None:
        st.caption(f"**{md(choice.label)}** · {size_line(choice)}")
    suggested = choice.questions[0] if choice and choice.questions else ""
    question = st.text_input("Question", value=suggested, key=f"question_{suggested}")
    if choice and len(choice.questions) > 1:
        st.caption("Suggested: " + " · ".join(choice.questions))
    config = config_form()

    ready = choice is not None and bool(question.strip()) and config is not None
    if st.button("Run", type="primary", disabled=not ready, key="run_button"):
        assert choice is not None and config is not None
        if check_models(config):
            run_id = live.start_run(jobs(), store(), choice.value, question.strip(), config)
            st.session_state["current_run"] = run_id
            # what the verdict needs, without keeping a second copy of the document
            st.session_state["expected"] = (run_id, replace(choice, value=None), question)

    if ready and choice is not None and config is not None:
        estimate.estimate(config.root_model, config.sub_model, choice.chars)
    if current := st.session_state.get("current_run"):
        live.render(current)
    side_by_side.render(choice, question.strip(), config)
