"""The Run page's live panel: status line and Stop, the growing graph, then the answer.

Every count comes from the run's row, which the engine rewrites as calls finish: the status line
and the summary after the run cannot disagree. The graph is redrawn only as often as its cost
allows, so watching a big run does not slow it down (the run shares this process).
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from rlm_core.analysis.outline import Outline
from rlm_core.config import RLMConfig
from rlm_core.engine.rlm import RLM
from rlm_core.otel_map import OtlpTarget
from rlm_core.repl.isolation import describe
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import RunResult, RunSummary, new_id
from ui.common import cost_text, store
from ui.context_choice import verdict
from ui.graph_component import graph
from ui.jobs import Job, JobRunner, jobs
from ui.run_graph import draw
from ui.safe import md, word
from ui.widgets import explorer_button, status_badge

GRAPH_COST = "_live_graph_cost"
REDRAW_SHARE = 0.03
"""The share of the server's time the live graph may take: after a draw that took t seconds
(reading the nodes, building and sending the payload), the next waits t / REDRAW_SHARE."""
TICK_S = 1.0


def start_run(
    runner: JobRunner,
    trace_store: TraceStore,
    context: Any,
    question: str,
    config: RLMConfig,
    otlp: OtlpTarget | None = None,
) -> str:
    """Start an RLM run as a background job whose id is the run's id. Calls no st.*: the store
    (and where spans go) are passed in, since the job's thread must not look them up."""
    run_id = new_id()

    def run(job: Job[RunResult]) -> RunResult:
        rlm = RLM(config=config, store=trace_store, otlp=otlp)
        result = rlm.run(context, question, cancel=job.cancel, run_id=run_id)
        stored = trace_store.get_run(run_id)
        if result.status == "error" and stored is not None and stored.status == "running":
            job.crash = result.error  # the store could not record the end: a full disk
        return result

    runner.start(run_id, run, what="The run")
    return run_id


def owned_and_running(run_id: str) -> bool:
    """Whether this server is running the run now (so it can be stopped)."""
    job = jobs().get(run_id)
    return job is not None and job.running


def going(run_id: str, run: RunSummary | None) -> bool:
    """Whether the run is still going: its job here, else its row (a CLI run, say)."""
    if jobs().get(run_id) is not None:
        return owned_and_running(run_id)
    return run is not None and run.status == "running"


def status_line(run: RunSummary) -> str:
    """Our own words and numbers only (rendered as markdown)."""
    elapsed = (run.ended_at or time.time()) - run.created_at
    return (
        f"{status_badge(run.status)} · iteration {run.iterations or 0} · "
        f"{run.llm_calls or 0:,} model calls · {run.tokens:,} tokens · "
        f"cost {cost_text(run.cost_usd)} · {elapsed:.1f} s"
    )


def render(run_id: str) -> None:
    """The status line (every second while the run goes), the graph (as often as its cost
    allows: two fragments, so a big graph is not re-sent with every status line), the answer."""
    live = going(run_id, store().get_run(run_id))

    @st.fragment(run_every=TICK_S if live else None)
    def status() -> None:
        run = store().get_run(run_id)
        still = going(run_id, run)
        if run is None:
            st.info("Starting the run…" if still else "This run is not in the store.")
            return
        line, stop = st.columns([3, 1], vertical_alignment="center")
        line.markdown(status_line(run))
        if owned_and_running(run_id) and stop.button("Stop", key="stop_run"):
            jobs().stop(run_id)
            st.toast("Stopping the run…")
        st.text(f"Question: {run.question or ''}")  # plain text: it may hold anything
        if live and not still:  # it just ended: one full rerun so the page leaves live mode
            st.rerun()

    every = redraw_every(run_id)

    @st.fragment(run_every=every if live else None)
    def drawing() -> None:
        started = time.perf_counter()
        nodes = store().outline(run_id)  # no texts: watching must not slow the run down
        if nodes:
            if "isolation" in nodes[0].meta:
                st.caption(describe(nodes[0].meta["isolation"]))
            _, payload = draw(store(), Outline(nodes))
            graph(payload, key=f"live_graph_{run_id}", height=360)
        cost = time.perf_counter() - started
        st.session_state[GRAPH_COST] = (run_id, cost)
        if live and redraw_every(run_id) > 1.5 * every:  # grown: slow the timer down
            st.rerun()

    status()
    drawing()
    if not live:
        job = jobs().get(run_id)
        finished(run_id, job.crash if job else None)


def redraw_every(run_id: str) -> float:
    """Seconds between redraws of the live graph: its last draw's cost / REDRAW_SHARE."""
    drawn, cost = st.session_state.get(GRAPH_COST, (None, 0.0))
    return max(TICK_S, cost / REDRAW_SHARE if drawn == run_id else 0.0)


def finished(run_id: str, crash: str | None) -> None:
    if crash:
        st.error(md(crash))
    run = store().get_run(run_id)
    if run is None:
        return
    status, answered = run.status, bool(run.answer)
    ended = "The run was stopped" if status == "interrupted" else ""
    if status == "limit":
        ended = f"Stopped by the limit `{word(run.limit_name)}`"
    if status == "ok":
        st.success("Answer")
    elif ended:
        st.warning(
            f"{ended}; best partial answer:"
            if answered
            else f"{ended} before the root model wrote an answer: there is none."
        )
    elif status == "error" or not crash:  # the error may quote a provider: plain text
        st.error("The run failed:")
        st.text(run.error or "unknown error")
    if run.answer:
        st.text(run.answer)
    expected = st.session_state.get("expected")
    if expected and expected[0] == run_id:
        judged = verdict(expected[1], expected[2], run.answer)
        if judged:
            st.text(f"Check against the known answer: {judged}")
    st.caption(f"run {word(run_id)}")
    explorer_button("Open this run in the Explorer", run_id)
