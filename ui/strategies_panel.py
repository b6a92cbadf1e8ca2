"""The Run page's "Compare strategies": the chosen strategies answer the same question about the
same context at once (background threads that never call st.*), and a table puts their answers,
correctness, tokens, cost and time side by side, each row one click from its trace."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.errors import ModelError
from rlm_core.models.resolve import check_model
from rlm_core.store.trace_store import TraceStore
from rlm_core.strategies.registry import STRATEGIES, label, run_strategy
from rlm_core.types import RunResult, new_id
from ui.common import cost_text, esc, explorer_link, manager, status_badge, store
from ui.run_form import ContextChoice, verdict

KEY = "strategy_compare"
DEFAULT = ["rlm", "plain", "rag"]


@dataclass
class Comparison:
    question: str
    choice: ContextChoice
    """Without its value: the verdict needs only the questions and answers."""
    runs: list[tuple[str, str]]
    """(strategy, run id) in the order chosen."""


def _run(
    name: str,
    context: Any,
    question: str,
    config: RLMConfig,
    trace_store: TraceStore,
    run_id: str,
    cancel: threading.Event,
) -> RunResult:
    return run_strategy(
        name, context, question, config, store=trace_store, cancel=cancel, run_id=run_id
    )


def start(choice: ContextChoice, question: str, config: RLMConfig, names: list[str]) -> None:
    try:
        for model in {config.root_model, config.sub_model}:
            check_model(model, api_base=config.api_base, api_key=config.api_key)
    except ModelError as exc:
        st.error(esc(exc))
        return
    runs = []
    for name in names:
        run_id = new_id()
        work = functools.partial(_run, name, choice.value, question, config, store(), run_id)
        manager().start_task(run_id, work)
        runs.append((name, run_id))
    st.session_state[KEY] = Comparison(question, replace(choice, value=None), runs)


def row(comparison: Comparison, name: str, run_id: str) -> dict[str, Any]:
    """One strategy's line; reads the live result when there is one, else the stored run."""
    live = manager().get(run_id)
    running = live is not None and live.running
    result = live.result if live is not None else None
    run = store().get_run(run_id)
    node = store().node(run_id) if run is not None else None
    meta = node.meta if node is not None else {}
    if result is not None:
        status, answer, cost, seconds = result.status, result.answer, result.cost_usd, result.wall_s
        tokens: int | None = result.tokens_in + result.tokens_out
    elif run is not None:
        status, answer, cost = run["status"], run["answer"], run["cost_usd"]
        tokens = (run["tokens_in"] or 0) + (run["tokens_out"] or 0)
        seconds = (run["ended_at"] or run["created_at"]) - run["created_at"]
    else:
        status, answer, cost, tokens, seconds = "running", None, None, None, 0.0
    if running:
        status = "running"
    elif live is not None and live.crash:
        status = "error"
    judged = None if running else verdict(comparison.choice, comparison.question, answer)
    return {
        "strategy": label(name),
        "status": status_badge(status),
        "answer": answer or "",
        "correct": judged or "—",
        "tokens": tokens,
        "cost": "…" if running else cost_text(cost),
        "time": f"{seconds:.1f} s",
        "note": (live.crash if live is not None and live.crash else None)
        or str(meta.get("strategy_note") or ""),
        "trace": explorer_link(run_id),
        "_running": running,
        "_cut": int(meta.get("truncated_chars") or 0),
    }


def table(comparison: Comparison) -> None:
    running = any(
        (live := manager().get(r)) is not None and live.running for _, r in comparison.runs
    )

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        lines = [row(comparison, name, run_id) for name, run_id in comparison.runs]
        still = any(line["_running"] for line in lines)
        shown = pd.DataFrame(
            [{k: v for k, v in ln.items() if not k.startswith("_")} for ln in lines]
        )
        st.dataframe(
            shown,
            hide_index=True,
            column_config={"trace": st.column_config.LinkColumn("trace", display_text="open")},
        )
        for line in lines:
            if line["_cut"]:
                # only our own label and a number go into this markdown
                st.warning(
                    f"{line['strategy']}: {line['_cut']:,} characters of the context did not fit "
                    "the window and were cut; that answer was given without them."
                )
        if still and st.button("Stop all", key="cmp_stop"):
            for _, run_id in comparison.runs:
                manager().stop(run_id)
            st.toast("Stopping the strategies…")
        if not still and running:  # they just ended: one full rerun leaves live mode
            st.rerun()

    panel()


def render(choice: ContextChoice | None, question: str, config: RLMConfig | None) -> None:
    """The multiselect, the Compare button, and the side-by-side table of the last comparison."""
    with st.expander("Compare strategies", expanded=KEY in st.session_state):
        st.caption(
            "Answer the same question with other strategies — the plain model with the context "
            "stuffed into its window, RAG, summarizing until it fits, the Algorithm 2 agent, RLM "
            "ablations — using the models and limits above. They run at the same time."
        )
        names = st.multiselect(
            "Strategies",
            list(STRATEGIES),
            default=DEFAULT,
            key="cmp_strategies",
            format_func=lambda n: f"{label(n)} — {STRATEGIES[n]}",
        )
        ready = choice is not None and bool(question) and config is not None and bool(names)
        clicked = st.button("Compare", disabled=not ready, key="cmp_button")
    if clicked:
        assert choice is not None and config is not None
        start(choice, question, config, names)
    comparison = st.session_state.get(KEY)
    if isinstance(comparison, Comparison):
        st.subheader("Strategies side by side")
        table(comparison)
