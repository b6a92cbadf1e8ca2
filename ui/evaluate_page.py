"""The Evaluate page: pick tasks, sizes and models; RLM and plain model side by side; score vs
context length (the paper's main figure) from the user's own models; CSV export.

Evaluations run in a background thread that never calls st.*; a fragment polls its progress.
Answers and questions are untrusted text: they reach the browser only as dataframe cells.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field

import altair as alt
import pandas as pd
import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.errors import ModelError
from rlm_core.evaluate import evaluator as ev
from rlm_core.evaluate import report
from rlm_core.evaluate.examples import EXAMPLES, SIZES
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import new_id
from ui.common import ROOT_PRESETS, cost_text, explorer_link, store, when
from ui.sampling import sampling_inputs
from ui.settings_page import saved_api_base, saved_models, session_key

SAME_AS_ROOT = "same as the root model (demo/sub for demo models)"
CURRENT = "current_eval"


def size_label(chars: int) -> str:
    return f"{chars / 1e6:g} M" if chars >= 1_000_000 else f"{chars / 1e3:g} K"


@dataclass
class EvalJob:
    eval_id: str
    plan: ev.EvalPlan
    thread: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    label: str = "starting"
    crash: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class EvalManager:
    """Process-wide registry of evaluations started from the browser."""

    def __init__(self) -> None:
        self.jobs: dict[str, EvalJob] = {}

    def start(self, plan: ev.EvalPlan, trace_store: TraceStore) -> str:
        job = EvalJob(eval_id=new_id(), plan=plan)

        def progress(done: int, total: int, label: str) -> None:
            job.done, job.label = done, label

        def work() -> None:
            try:
                ev.Evaluator(
                    plan, trace_store, eval_id=job.eval_id, cancel=job.cancel, on_progress=progress
                ).run()
            except Exception as exc:  # the log gets the traceback, the page one line
                traceback.print_exc()
                job.crash = f"The evaluation stopped on an internal error: {type(exc).__name__}"

        job.thread = threading.Thread(target=work, name=f"eval-{job.eval_id}", daemon=True)
        self.jobs[job.eval_id] = job
        job.thread.start()
        return job.eval_id

    def get(self, eval_id: str) -> EvalJob | None:
        return self.jobs.get(eval_id)


@st.cache_resource
def manager() -> EvalManager:
    return EvalManager()


# ---- the form ----------------------------------------------------------------------------


def plan_form() -> ev.EvalPlan | None:
    tasks = st.multiselect(
        "Tasks",
        list(EXAMPLES),
        default=["needle"],
        key="ev_tasks",
        format_func=lambda k: f"{k}: {EXAMPLES[k].description}",
    )
    sizes = st.multiselect(
        "Context sizes (characters)",
        list(SIZES),
        default=[10_000, 100_000],
        key="ev_sizes",
        format_func=size_label,
    )
    options = list(dict.fromkeys([*ROOT_PRESETS, *saved_models()]))
    left, right = st.columns(2)
    roots = left.multiselect("Models", options, default=["demo/root"], key="ev_models")
    extra = left.text_input("More models (litellm names, comma-separated)", key="ev_extra")
    roots += [m.strip() for m in extra.split(",") if m.strip()]
    sub = right.selectbox(
        "Sub model of the RLM",
        [SAME_AS_ROOT, *options],
        key="ev_sub",
    )
    methods = right.multiselect(
        "Methods (strategies)",
        list(ev.METHODS),
        default=list(ev.DEFAULT_METHODS),
        key="ev_methods",
        format_func=lambda m: ev.METHOD_LABELS[m] + (" (whole context)" if m == "base" else ""),
    )
    with st.expander("Limits per RLM run, API base"):
        c1, c2, c3 = st.columns(3)
        iterations = c1.number_input("Max iterations", 1, 200, 20, key="ev_iter")
        timeout = c2.number_input("Timeout in s (0 = none)", 0, 86_400, 600, key="ev_timeout")
        cost = c3.number_input("Max cost in USD (0 = none)", 0.0, 1_000.0, 0.0, key="ev_cost")
        api_base = st.text_input("API base (empty: from Settings)", key="ev_api_base").strip()
        seeds = int(c1.number_input("Seeds per question (RLM runs)", 1, 20, 1, key="ev_seeds"))
        sampling = sampling_inputs("ev")
    if not tasks or not sizes or not roots or not methods:
        st.info("Pick at least one task, size, model and method.")
        return None
    base = api_base or next((b for m in roots if (b := saved_api_base(m))), None)
    try:
        config = RLMConfig(
            api_base=base,
            api_key=session_key(roots[0]),
            max_iterations=int(iterations),
            timeout_s=float(timeout) or None,
            max_cost_usd=float(cost) or None,
            **sampling,
        )
        pairs = tuple((r, ev.default_sub(r) if sub == SAME_AS_ROOT else str(sub)) for r in roots)
        runs = tuple(range(1, seeds + 1)) if seeds > 1 else (config.seed,)
        return ev.EvalPlan(tuple(tasks), tuple(sorted(sizes)), pairs, config, tuple(methods), runs)
    except ValueError as exc:
        st.error(str(exc))
        return None


# ---- progress and results ----------------------------------------------------------------


def progress_panel(eval_id: str) -> None:
    job = manager().get(eval_id)
    running = job is not None and job.running

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        job = manager().get(eval_id)
        if job is None:
            return
        total = max(job.plan.total, 1)
        still = job.running
        st.progress(min(job.done / total, 1.0), text=f"{job.done} of {total} · {job.label}")
        if still and st.button("Stop", key="ev_stop"):
            job.cancel.set()
            st.toast("Stopping after the current run…")
        if job.crash:
            st.error(job.crash)
        if not still:
            st.caption("Stopped." if job.cancel.is_set() else "Finished.")
            if running:  # it just ended: one full rerun so the results below refresh
                st.rerun()

    panel()


def side_by_side(rows: list[ev.EvalRow]) -> pd.DataFrame:
    """One line per task, size and model with each method's score, cost and time."""
    table: dict[tuple[str, int, str], dict[str, object]] = {}
    for s in ev.summary(rows):
        line = table.setdefault(
            (s["task"], s["context_chars"], s["model"]),
            {"task": s["task"], "context chars": s["context_chars"], "model": s["model"]},
        )
        name = s["method"]
        if s["score"] is None and s["did_not_fit"]:
            line[f"{name} score"] = ev.DID_NOT_FIT
        else:
            line[f"{name} score"] = "—" if s["score"] is None else f"{s['score']:.2f}"
        line[f"{name} cost"] = (
            cost_text(s["cost_usd"]) if s["did_not_fit"] < s["questions"] else "—"
        )
        line[f"{name} time"] = "—" if s["wall_s"] is None else f"{s['wall_s']:.1f} s"
    return pd.DataFrame(list(table.values()))


def chart(rows: list[ev.EvalRow]) -> alt.Chart | None:
    points = [
        {
            "task": s["task"],
            "context chars": s["context_chars"],
            "score": s["score"],
            "series": f"{s['model']} · {s['method']}",
        }
        for s in ev.summary(rows)
        if s["score"] is not None
    ]
    if not points:
        return None
    line = (
        alt.Chart(pd.DataFrame(points))
        .mark_line(point=True)
        .encode(
            x=alt.X("context chars:Q", scale=alt.Scale(type="log"), title="context length (chars)"),
            y=alt.Y("score:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("series:N", title="model · method"),
            tooltip=["task", "series", "context chars", alt.Tooltip("score:Q", format=".2f")],
        )
        .properties(width=320, height=240)
    )
    return line.facet(column=alt.Column("task:N", title=None))


def details(rows: list[ev.EvalRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "task": r.task,
                "chars": r.context_chars,
                "model": r.model,
                "method": ev.METHOD_LABELS.get(r.method, r.method),
                "status": r.status,
                "score": r.score,
                "question": r.question,
                "expected": r.expected,
                "answer": r.answer,
                "cost": cost_text(r.cost_usd) if r.status != ev.DID_NOT_FIT else "—",
                "time s": r.wall_s,
                "error": r.error,
                "trace": explorer_link(r.run_id) if r.run_id else None,
            }
            for r in rows
        ]
    )


def results(trace_store: TraceStore) -> None:
    evals = ev.list_evals(trace_store)
    if not evals:
        st.caption("No evaluation yet.")
        return
    ids = [e["eval_id"] for e in evals]
    labels = {
        e["eval_id"]: f"{when(e['created_at'])} · {e['tasks']} · {e['models']}" for e in evals
    }
    current = st.session_state.get(CURRENT)
    chosen = st.selectbox(
        "Evaluation",
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=lambda i: labels[i],
        key=f"ev_pick_{current}",
    )
    rows = ev.load_rows(trace_store, chosen)
    st.dataframe(side_by_side(rows), hide_index=True)
    st.caption("Per question: the RLM over its seeds against the plain model")
    st.dataframe(pd.DataFrame(report.rlm_vs_plain(rows)), hide_index=True)
    figure = chart(rows)
    if figure is not None:
        st.altair_chart(figure)
    st.download_button(
        "Download CSV",
        ev.rows_csv(rows),
        file_name=f"eval-{chosen}.csv",
        mime="text/csv",
        key="ev_csv",
    )
    with st.expander(f"Every answer ({len(rows)})"):
        st.dataframe(
            details(rows),
            hide_index=True,
            column_config={"trace": st.column_config.LinkColumn("trace", display_text="open")},
        )


def render() -> None:
    plan = plan_form()
    if plan is not None:
        st.caption(f"{plan.total} runs; contexts are generated, so answers are known.")
    if st.button("Start evaluation", type="primary", disabled=plan is None, key="ev_start"):
        assert plan is not None
        try:
            ev.preflight([m for pair in plan.models for m in pair], plan.config)
        except ModelError as exc:
            st.error(str(exc))
        else:
            st.session_state[CURRENT] = manager().start(plan, store())
    if eval_id := st.session_state.get(CURRENT):
        progress_panel(eval_id)
    st.subheader("Results")
    results(store())
