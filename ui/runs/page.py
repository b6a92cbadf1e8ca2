"""The Runs page: every traced run in one table, with search, filters, sort and per-run actions.

Run text (questions, answers, names, tags) is untrusted: it only reaches the browser through
dataframe cells, widget values and `st.text`, never through markdown.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from rlm_core.store.trace_store import TraceStore
from rlm_core.types import TERMINAL_STATUSES, RunSummary
from ui.common import cost_text, store, when
from ui.runs import import_trace
from ui.runs.compare import compare_link
from ui.safe import md
from ui.widgets import explorer_button, explorer_link, page_link, status_badge

log = logging.getLogger(__name__)

LIMIT = 1000
"""Rows read per query; the table says so when it is cut."""
PREVIEW_CHARS = 80
STATUSES = ("running", *TERMINAL_STATUSES)
ALL_MODELS = "All models"
SORTS: dict[str, Callable[[RunSummary], Any]] = {
    "Newest first": lambda r: -(r.created_at or 0),
    "Oldest first": lambda r: r.created_at or 0,
    # unknown cost/tokens/duration sort last rather than pretending to be zero
    "Most expensive": lambda r: -r.cost_usd if r.cost_usd is not None else float("inf"),
    "Most tokens": lambda r: -t if (t := tokens(r)) is not None else float("inf"),
    "Longest": lambda r: -d if (d := duration_s(r)) is not None else float("inf"),
}
FLASH = "runs_flash"
CONFIRM_TEXT = "I understand this deletes the run and its trace"
RUN_PAGE = "app.py"


@dataclass(frozen=True)
class Filters:
    search: str
    statuses: tuple[str, ...]
    model: str | None
    sort: str


# ---- pure helpers --------------------------------------------------------------------------


def one_line(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tokens(run: RunSummary) -> int | None:
    if run.tokens_in is None and run.tokens_out is None:
        return None
    return (run.tokens_in or 0) + (run.tokens_out or 0)


def duration_s(run: RunSummary) -> float | None:
    if run.status == "running" or run.ended_at is None or run.created_at is None:
        return None
    return max(0.0, run.ended_at - run.created_at)


def duration_text(run: RunSummary) -> str:
    if run.status == "running":
        return "running…"
    seconds = duration_s(run)
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def models_text(run: RunSummary) -> str:
    return f"{run.root_model or '?'} / {run.sub_model or '?'}"


def parse_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def apply_filters(runs: list[RunSummary], filters: Filters) -> list[RunSummary]:
    """Status and sort are applied here (search and model already went to the store's SQL)."""
    kept = [r for r in runs if not filters.statuses or r.status in filters.statuses]
    return sorted(kept, key=SORTS[filters.sort])


COLUMNS: dict[str, Any] = {
    "Run": st.column_config.TextColumn(
        "Run", width="medium", help="The run's name, or its question"
    ),
    "Open": st.column_config.LinkColumn(
        "Open", display_text="Open ↗", width="small", help="Open the run in the Explorer"
    ),
    "Status": st.column_config.TextColumn("Status", width="small"),
    "Models": st.column_config.TextColumn("Models", help="Root model / sub model"),
    "Answer": st.column_config.TextColumn("Answer", width="medium"),
    "Iterations": st.column_config.NumberColumn("Iterations", width="small"),
    "Calls": st.column_config.NumberColumn("Calls", width="small", help="LLM calls"),
    "Tokens": st.column_config.NumberColumn("Tokens", format="localized", help="In + out"),
    "Cost": st.column_config.TextColumn("Cost", width="small"),
    "Duration": st.column_config.TextColumn("Duration", width="small"),
    "Date": st.column_config.TextColumn("Date"),
    "Tags": st.column_config.ListColumn("Tags"),
    "ID": st.column_config.TextColumn("ID", width="small"),
}


def table(runs: list[RunSummary]) -> pd.DataFrame:
    rows = [
        {
            "Run": one_line(r.name or r.question, 120),
            "Open": explorer_link(r.run_id),
            "Status": status_badge(r.status),
            "Models": models_text(r),
            "Answer": one_line(r.answer),
            "Iterations": r.iterations,
            "Calls": r.llm_calls,
            "Tokens": tokens(r),
            "Cost": cost_text(r.cost_usd),
            "Duration": duration_text(r),
            "Date": when(r.created_at),
            "Tags": list(r.tags or []),
            "ID": r.run_id,
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def table_key(run_ids: Sequence[str]) -> str:
    """A keyed dataframe keeps its selection (row positions) when its data changes, so a new
    listing would re-point the selection at other runs; keying on the listed ids resets it."""
    digest = hashlib.sha1("\n".join(run_ids).encode()).hexdigest()[:12]
    return f"runs_table_{digest}"


# ---- actions (widget callbacks: they run before the rerun, so the table shows the result) ---


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)


def _guarded(action: Callable[[TraceStore], str]) -> None:
    try:
        _flash("success", action(store()))
    except Exception as exc:  # shown to the user; the traceback goes to the server log only
        log.exception("Runs page action failed")
        _flash("error", f"That did not work: {type(exc).__name__}: {md(exc)}")


def _rename(run_id: str, key: str) -> None:
    name = str(st.session_state.get(key) or "").strip()

    def rename(s: TraceStore) -> str:
        s.rename_run(run_id, name or None)
        return "Name saved." if name else "Name cleared."

    _guarded(rename)


def _tag(run_id: str, key: str) -> None:
    tags = parse_tags(str(st.session_state.get(key) or ""))

    def tag(s: TraceStore) -> str:
        s.set_tags(run_id, tags)
        return "Tags saved." if tags else "Tags cleared."

    _guarded(tag)


def _delete(run_ids: tuple[str, ...]) -> None:
    def delete(s: TraceStore) -> str:
        for run_id in run_ids:
            s.delete_run(run_id)
        return "Run deleted." if len(run_ids) == 1 else f"{len(run_ids)} runs deleted."

    _guarded(delete)


# ---- rendering -----------------------------------------------------------------------------


def render() -> None:
    _show_flash()
    import_trace.import_expander()
    try:
        s = store()
        everything = s.list_runs(limit=LIMIT)
    except Exception as exc:
        log.exception("Runs page could not read the store")
        st.error(f"Could not read the trace store: {md(exc)}")
        return
    if not everything:
        _empty_state()
        return
    filters = _controls(everything)
    try:
        found = (
            s.list_runs(search=filters.search or None, model=filters.model, limit=LIMIT)
            if filters.search or filters.model
            else everything
        )
    except Exception as exc:
        log.exception("Runs page search failed")
        st.error(f"Could not search the runs: {md(exc)}")
        return
    runs = apply_filters(found, filters)
    if not runs:
        st.info("No runs match these filters.")
        return
    selected = _table(runs, cut=len(found) >= LIMIT)
    _actions(selected)


def _show_flash() -> None:
    flash = st.session_state.pop(FLASH, None)
    if flash:
        kind, message = flash
        (st.success if kind == "success" else st.error)(message)


def _empty_state() -> None:
    st.info("No runs yet. Start one on the Run page; every run is traced and listed here.")
    page_link(RUN_PAGE, "Go to the Run page", "/")


def _controls(runs: list[RunSummary]) -> Filters:
    models = sorted({m for r in runs for m in (r.root_model, r.sub_model) if m})
    search_col, status_col, model_col, sort_col = st.columns([3, 2, 2, 2])
    search = search_col.text_input(
        "Search", key="runs_search", placeholder="question, answer, name, tag or id"
    )
    statuses = status_col.multiselect(
        "Status", STATUSES, key="runs_status", format_func=status_badge, placeholder="Any status"
    )
    model = model_col.selectbox("Model", [ALL_MODELS, *models], key="runs_model")
    sort = sort_col.selectbox("Sort", list(SORTS), key="runs_sort")
    return Filters(
        search=search.strip(),
        statuses=tuple(statuses),
        model=None if model in (None, ALL_MODELS) else model,
        sort=sort or "Newest first",
    )


def _table(runs: list[RunSummary], *, cut: bool) -> list[RunSummary]:
    event = st.dataframe(
        table(runs),
        key=table_key([r.run_id for r in runs]),
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        column_config=COLUMNS,
        width="stretch",
    )
    shown = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    st.caption(f"{shown} (only the newest {LIMIT} are read)" if cut else shown)
    rows = event.selection.rows if event else []
    return [runs[i] for i in rows if 0 <= i < len(runs)]


def _actions(selected: list[RunSummary]) -> None:
    if not selected:
        st.caption("Select a row to open, rename, tag or delete a run; select several to delete.")
    elif len(selected) == 1:
        _single_actions(selected[0])
    else:
        st.subheader(f"{len(selected)} runs selected")
        if len(selected) == 2:  # older one as A: a fork is usually newer than its parent
            compare_link(*sorted((r.run_id for r in selected), key=str))
        _delete_controls(selected)


def _single_actions(run: RunSummary) -> None:
    run_id = run.run_id
    st.subheader("Selected run")
    st.text(run.question or "(no question)")
    explorer_button("Open in Explorer", run_id)
    name_col, tags_col = st.columns(2)
    with name_col.form(f"rename_form_{run_id}", border=False):
        key = f"rename_{run_id}"
        st.text_input("Name", value=run.name or "", key=key, placeholder="e.g. baseline")
        st.form_submit_button(
            "Save name", key=f"save_name_{run_id}", on_click=_rename, args=(run_id, key)
        )
    with tags_col.form(f"tags_form_{run_id}", border=False):
        key = f"tags_{run_id}"
        st.text_input(
            "Tags", value=", ".join(run.tags or []), key=key, placeholder="comma, separated"
        )
        st.form_submit_button(
            "Save tags", key=f"save_tags_{run_id}", on_click=_tag, args=(run_id, key)
        )
    _delete_controls([run])


def _delete_controls(runs: list[RunSummary]) -> None:
    # a run still executing would be written back by its engine thread right after deletion
    running = [r for r in runs if r.status == "running"]
    deletable = tuple(r.run_id for r in runs if r.status != "running")
    if running:
        st.caption(f"{len(running)} selected run(s) still running; stop them before deleting.")
    if not deletable:
        return
    label = "Delete run" if len(deletable) == 1 else f"Delete {len(deletable)} runs"
    confirm_key = f"confirm_delete_{hashlib.sha1(''.join(deletable).encode()).hexdigest()[:12]}"
    confirmed = st.checkbox(CONFIRM_TEXT, key=confirm_key)
    st.button(
        label,
        key=f"delete_{confirm_key}",
        type="primary",
        disabled=not confirmed,
        on_click=_delete,
        args=(deletable,),
        help="Removes the run, its nodes and its journal file; this cannot be undone",
    )
