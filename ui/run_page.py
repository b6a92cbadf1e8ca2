"""The Run page: pick a context, a question and models, run an RLM, watch its graph grow."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from rlm_core.engine.budget import check_cost_limit
from rlm_core.errors import ModelError
from rlm_core.models.resolve import check_model
from ui import cost_panels, live, strategies_panel
from ui.common import esc, manager
from ui.run_form import config_form, context_picker, size_line


def render() -> None:
    st.title("RLM Tracer")
    st.caption(
        "A recursive language model keeps your document in a Python REPL and lets the root "
        "model write code that reads slices of it and asks sub models about them. Run one, then "
        "step through every node in the Explorer."
    )
    choice = context_picker()
    if choice is not None:
        st.caption(f"**{esc(choice.label)}** · {size_line(choice)}")
    suggested = choice.questions[0] if choice and choice.questions else ""
    question = st.text_input("Question", value=suggested, key=f"question_{suggested}")
    if choice and len(choice.questions) > 1:
        st.caption("Suggested: " + " · ".join(choice.questions))
    config = config_form()

    ready = choice is not None and bool(question.strip()) and config is not None
    if st.button("Run", type="primary", disabled=not ready, key="run_button"):
        assert choice is not None and config is not None
        try:
            for model in {config.root_model, config.sub_model}:
                check_model(model, api_base=config.api_base, api_key=config.api_key)
            check_cost_limit(config)
        except ModelError as exc:
            st.error(esc(exc))
        else:
            run_id = manager().start(choice.value, question.strip(), config)
            st.session_state["current_run"] = run_id
            # what the verdict needs, without keeping a second copy of the document
            st.session_state["expected"] = (run_id, replace(choice, value=None), question)

    if ready and choice is not None and config is not None:
        cost_panels.estimate(config.root_model, config.sub_model, choice.chars)
    if current := st.session_state.get("current_run"):
        live.render(current)
    strategies_panel.render(choice, question.strip(), config)
