"""The Evaluate page: pick tasks, sizes and models; RLM and plain model side by side; score vs
context length (the paper's main figure) from the user's own models; CSV export.

Evaluations run as background jobs (ui.jobs); a fragment polls their progress.
Answers and questions are untrusted text: they reach the browser only as dataframe cells.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from rlm_core.config import RLMConfig
from rlm_core.errors import ModelError
from rlm_core.evaluate import evaluator as ev
from rlm_core.evaluate import report
from rlm_core.evaluate.examples import EXAMPLES, SIZES
from rlm_core.otel_map import OtlpTarget
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import new_id
from ui.common import cost_text, otlp_target, store, when
from ui.config_inputs import limit_inputs, sampling_inputs
from ui.jobs import Job, jobs
from ui.model_picker import (
    ROOT_PRESETS,
    child_root_picker,
    saved_api_base,
    saved_models,
    session_key,
)
from ui.safe import md
from ui.widgets import explorer_link

SAME_AS_ROOT = "same as the root model (demo/sub for demo models)"
LOCAL_RAY = "local"
EXECUTORS = {
    "threads": "in this server process, one row after another",
    "ray": "as Ray tasks: a local Ray started on demand, or a cluster",
}
CURRENT = "current_eval"


def size_label(chars: int) -> str:
    return f"{chars / 1e6:g} M" if chars >= 1_000_000 else f"{chars / 1e3:g} K"


def start(
    plan: ev.EvalPlan,
    trace_store: TraceStore,
    otlp: OtlpTarget | None = None,
    ray_address: str | None = None,
) -> str:
    """Run the evaluation as a background job; its job id is the evaluation's id. With a
    `ray_address` ("local": a Ray started here) its rows run as Ray tasks."""
    eval_id = new_id()

    def work(job: Job[list[ev.EvalRow]]) -> list[ev.EvalRow]:
        if ray_address is None:
            evaluator = ev.Evaluator(
                plan,
                trace_store,
                eval_id=eval_id,
                cancel=job.cancel,
                on_progress=job.report,
                otlp=otlp,
            )
        else:
            from rlm_core.evaluate.on_ray import RayEvaluator  # Ray takes seconds to import

            evaluator = RayEvaluator(
                plan,
                trace_store,
                address=None if ray_address == LOCAL_RAY else ray_address,
                eval_id=eval_id,
                cancel=job.cancel,
                on_progress=job.report,
                otlp=otlp,
            )
        return evaluator.run()

    jobs().start(eval_id, work, what="The evaluation")
    return eval_id


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
    with right:
        child_root = child_root_picker("ev_child_root")
    methods = right.multiselect(
        "Methods (strategies)",
        list(ev.METHODS),
        default=list(ev.DEFAULT_METHODS),
        key="ev_methods",
        format_func=lambda m: ev.METHOD_LABELS[m] + (" (whole context)" if m == "base" else ""),
    )
    with st.expander("Limits per RLM run, API base, sampling"):
        limits = limit_inputs("ev")
        api_base = st.text_input("API base (empty: from Settings)", key="ev_api_base").strip()
        seeds = int(st.number_input("Seeds per question (RLM runs)", 1, 20, 1, key="ev_seeds"))
        sampling = sampling_inputs("ev")
    if not tasks or not sizes or not roots or not methods:
        st.info("Pick at least one task, size, model and method.")
        return None
    if child_root == "":
        st.info("Type the name of the child root model.")
        return None
    base = api_base or next((b for m in roots if (b := saved_api_base(m))), None)
    try:
        keyed = [
            *roots,
            *([] if sub == SAME_AS_ROOT else [sub]),
            *([child_root] if child_root else []),
        ]
        config = RLMConfig(
            api_base=base,
            api_key=session_key(*keyed, api_base=base),
            child_root_model=child_root,
            **limits,
            **sampling,
        )
        pairs = tuple((r, ev.default_sub(r) if sub == SAME_AS_ROOT else str(sub)) for r in roots)
        runs = tuple(range(1, seeds + 1)) if seeds > 1 else (config.seed,)
        return ev.EvalPlan(tuple(tasks), tuple(sorted(sizes)), pairs, config, tuple(methods), runs)
    except ValueError as exc:
        st.error(md(exc))
        return None


# ---- progress and results ----------------------------------------------------------------


def progress_panel(eval_id: str) -> None:
    job = jobs().get(eval_id)
    running = job is not None and job.running

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        job = jobs().get(eval_id)
        if job is None:
            return
        done, total, label = job.progress or (0, 0, "starting")
        still = job.running
        st.progress(min(done / max(total, 1), 1.0), text=f"{done} of {total} · {label}")
        if still and st.button("Stop", key="ev_stop"):
            jobs().stop(eval_id)
            st.toast("Stopping: the runs going now end as interrupted…")
        if job.crash:
            st.error(md(job.crash))
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
        elif s["score"] is None:
            line[f"{name} score"] = "—"
        elif s["score_spread"] is None:
            line[f"{name} score"] = f"{s['score']:.2f}"
        else:
            low, high = s["score_spread"]
            line[f"{name} score"] = f"{s['score']:.2f} ({low:.2f}–{high:.2f})"
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
    if len({r.seed for r in rows}) > 1:
        st.caption("Scores over several seeds: the mean (the lowest and the highest seed's mean)")
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


def executor_choice() -> str | None:
    """None: rows in this process; else the Ray address (LOCAL_RAY: a Ray started here)."""
    left, right = st.columns(2)
    executor = left.radio(
        "Run the rows",
        list(EXECUTORS),
        format_func=EXECUTORS.__getitem__,
        key="ev_executor",
        horizontal=True,
    )
    if executor != "ray":
        return None
    address = right.text_input(
        "Ray cluster address (empty: a local Ray on this machine's cores)",
        key="ev_ray_address",
        placeholder="ray://head-node:10001",
    ).strip()
    return address or LOCAL_RAY


def render() -> None:
    plan = plan_form()
    ray_address = executor_choice()
    if plan is not None:
        st.caption(f"{plan.total} runs; contexts are generated, so answers are known.")
    if st.button("Start evaluation", type="primary", disabled=plan is None, key="ev_start"):
        assert plan is not None
        try:
            ev.preflight(plan)
        except ModelError as exc:
            st.error(md(exc))
        else:
            st.session_state[CURRENT] = start(plan, store(), otlp_target(), ray_address)
    if eval_id := st.session_state.get(CURRENT):
        progress_panel(eval_id)
    st.subheader("Results")
    results(store())
