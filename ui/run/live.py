"""The Run page's live panel: status line, growing graph, Stop, then the answer."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from rlm_core.analysis.outline import Outline
from rlm_core.config import RLMConfig
from rlm_core.engine.rlm import RLM
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunResult, new_id
from ui.common import cost_text, store
from ui.context_choice import verdict
from ui.graph_component import graph
from ui.jobs import Job, JobRunner, jobs
from ui.run_graph import draw
from ui.safe import word
from ui.widgets import explorer_button, status_badge


def start_run(
    runner: JobRunner, trace_store: TraceStore, context: Any, question: str, config: RLMConfig
) -> str:
    """Start an RLM run as a background job whose id is the run's id. Calls no st.*: the store
    is passed in, since the job's thread must not look it up."""
    run_id = new_id()

    def run(job: Job[RunResult]) -> RunResult:
        rlm = RLM(config=config, store=trace_store)
        return rlm.run(context, question, cancel=job.cancel, run_id=run_id)

    runner.start(run_id, run, what="The run")
    return run_id


def status_line(root: Node, nodes: list[Node]) -> str:
    calls = sum(1 for n in nodes if n.kind in ("lm", "llm_query") and n.status != "running")
    tokens = sum((n.tokens_in or 0) + (n.tokens_out or 0) for n in nodes if n.kind != "run")
    costs = [n.cost_usd for n in nodes if n.kind in ("lm", "llm_query") and n.status == "ok"]
    cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    iteration = max((n.meta.get("iteration", 0) for n in nodes if n.depth == 0), default=0)
    elapsed = (root.ended_at or time.time()) - root.started_at
    return (
        f"{status_badge(root.status)} · iteration {iteration} · {calls} model calls · "
        f"{tokens:,} tokens · cost {cost_text(cost)} · {elapsed:.1f} s"
    )


def render(run_id: str) -> None:
    live = jobs().get(run_id)
    running = live is not None and live.running

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        live = jobs().get(run_id)
        nodes = store().outline(run_id)  # no texts: watching must not slow the run down
        if not nodes:
            st.info("Starting the run…")
            return
        root = nodes[0]
        still_running = live is not None and live.running
        cols = st.columns([5, 1])
        cols[0].markdown(status_line(root, nodes))
        if still_running and cols[1].button("Stop", key="stop_run", type="secondary"):
            jobs().stop(run_id)
            st.toast("Stopping the run…")
        _, payload = draw(store(), Outline(nodes))
        graph(payload, key=f"live_graph_{run_id}", height=420)
        if not still_running:
            finished(run_id, root, live.crash if live else None)
            if running:  # it just ended: one full rerun so the page leaves live mode
                st.rerun()

    panel()


def finished(run_id: str, root: Node, crash: str | None) -> None:
    if crash:
        st.error(crash)
    run = store().get_run(run_id)
    if run is None:
        return
    status = run.status
    if status == "ok":
        st.success("Answer")
    elif status == "limit":
        st.warning(f"Stopped by the limit `{word(run.limit_name)}`; best partial answer:")
    elif status == "interrupted":
        st.warning("The run was stopped; partial answer:")
    else:  # the error may quote a provider or the model: plain text, not markdown
        st.error("The run failed:")
        st.text(run.error or "unknown error")
    if run.answer:
        st.text(run.answer)
    expected = st.session_state.get("expected")
    if expected and expected[0] == run_id:
        judged = verdict(expected[1], expected[2], run.answer)
        if judged:
            st.text(f"Check against the known answer: {judged}")
    tokens = (run.tokens_in or 0) + (run.tokens_out or 0)
    duration = (run.ended_at or time.time()) - run.created_at
    st.caption(
        f"{run.iterations} iterations · {run.llm_calls} model calls · {tokens:,} tokens · "
        f"cost {cost_text(run.cost_usd)} · {duration:.1f} s · run {run_id}"
    )
    explorer_button("Open this run in the Explorer", run_id)
