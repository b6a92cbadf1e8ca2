"""Under the Explorer's inspector: fork the run at a root turn (edited response or code, other
models or limits) in the background, re-ask one sub-call in a playground, and the header line of
a forked or replayed run. Node texts only reach the browser as widget values and st.text.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import streamlit as st

from rlm_core.config import settings
from rlm_core.engine.replay import ask_again, fork_run
from rlm_core.errors import ModelError
from rlm_core.models.resolve import check_model
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunResult, RunSummary, new_id
from ui.common import root_of
from ui.config_inputs import limit_inputs, sampling_inputs
from ui.jobs import Job, jobs
from ui.model_picker import session_key
from ui.safe import safe_id
from ui.widgets import explorer_button, status_badge

log = logging.getLogger(__name__)

TASKS = "fork_tasks"
"""Session: node id -> (job id, started at) of the forks started from that node."""
ANSWERS = "ask_again_answers"
"""Session: node id -> ("ok", text, model) or ("error", message) of the playground."""
KEY_FIELD = "fork_api_key"
POLL_S = 1.0
USE_TEXT = "Use the text below"
ASK_LIVE = "Ask the root model again here"


# ---- the header line of a fork or a replay ---------------------------------------------------


def origin(nodes: list[Node]) -> None:
    root = root_of(nodes)
    if root is None:
        return
    forked = root.meta.get("forked_from")
    if isinstance(forked, dict):
        run_id, node_id = safe_id(forked.get("run_id")), safe_id(forked.get("node_id"))
        if run_id and node_id:
            explorer_button(f"Forked from run {run_id} at node {node_id}", run_id, node_id)
        else:
            st.text("Forked from another run (its id is not shown: it is not a plain id).")
        st.caption(
            "In the graph, faded nodes were replayed from the recorded run; the pink glow marks "
            "the fork point, where this run went its own way."
        )
    elif safe_id(root.meta.get("replay_of")):
        explorer_button(f"Replay of run {root.meta['replay_of']}", str(root.meta["replay_of"]))


# ---- fork ------------------------------------------------------------------------------------


def show(store: TraceStore, run: RunSummary, node: Node) -> None:
    """The fork form for a root lm/code node, the playground for an llm_query node."""
    if node.kind in ("lm", "code") and node.depth == 0:
        _fork(store, run, node)
    elif node.kind == "llm_query":
        _playground(store, run, node)


def _config(store: TraceStore, run: RunSummary) -> dict[str, Any]:
    """The run's recorded config, with the default for a limit it does not record (an older or
    imported trace): a fork runs with that default, so only another value is a change."""
    root = store.node(str(run.run_id))
    config = root.meta.get("config") if root is not None else None
    recorded = config if isinstance(config, dict) else {}
    return {s.name: s.default for s in settings("limit")} | recorded


def _fork(store: TraceStore, run: RunSummary, node: Node) -> None:
    with st.expander("Fork here: change this turn and run on from it", expanded=False):
        if run.status == "running":
            st.info("Fork a run once it has finished.")
            return
        if (store.node(node.node_id) or node).meta.get("ran_for_model"):
            st.info(
                "The engine ran this search for the model (it kept answering with a refused "
                "guess), so no turn of the model's wrote it: fork from the model call after it."
            )
            return
        box = st.container()  # the fork's progress goes above the form, where it stays visible
        _fork_form(store, run, node)
        task = st.session_state.get(TASKS, {}).get(node.node_id)
        if task is not None:
            with box:
                _fork_status(store, str(run.run_id), node.node_id, *task)


def _fork_form(store: TraceStore, run: RunSummary, node: Node) -> None:
    full = store.node(node.node_id) or node
    config = _config(store, run)
    is_code = node.kind == "code"
    st.caption(
        "A new run replays this one up to here with no model calls, then goes on live from this "
        "turn. The original run is not changed."
    )
    with st.form(f"fork_form_{node.node_id}", border=False):
        mode = st.radio(
            "At this turn", [USE_TEXT, ASK_LIVE], key=f"fork_mode_{node.node_id}", horizontal=True
        )
        text = st.text_area(
            "Code of this cell" if is_code else "The model's response",
            value=(full.code if is_code else full.output) or "",
            height=240,
            key=f"fork_text_{node.node_id}",
        )
        left, right = st.columns(2)
        root_model = left.text_input(
            "Root model", value=str(config.get("root_model") or ""), key=f"fork_root_{node.node_id}"
        )
        sub_model = right.text_input(
            "Sub model", value=str(config.get("sub_model") or ""), key=f"fork_sub_{node.node_id}"
        )
        api_base = left.text_input(
            "API base", value=str(config.get("api_base") or ""), key=f"fork_base_{node.node_id}"
        )
        api_key = right.text_input(
            "API key (this browser session only; never saved)", type="password", key=KEY_FIELD
        )
        limits = limit_inputs(f"fork_{node.node_id}", config)
        sampling = sampling_inputs(f"fork_{node.node_id}", config)
        submitted = st.form_submit_button("Run fork", type="primary")
    if not submitted:
        return
    models = {"root_model": root_model.strip(), "sub_model": sub_model.strip()}
    if not all(models.values()):
        st.error("Type a model name for the root and the sub model.")
        return
    wanted = {**models, "api_base": api_base.strip() or None, **limits, **sampling}
    changes = {k: v for k, v in wanted.items() if v != config.get(k)}
    key = api_key.strip() or session_key(*models.values(), api_base=wanted["api_base"])
    for field in ("root_model", "sub_model"):
        if field in changes:  # the recorded models worked; a newly typed one may be a typo
            try:
                check_model(changes[field], api_base=wanted["api_base"], api_key=key)
            except ModelError as exc:
                st.error("That model cannot be used:")
                st.text(str(exc))
                return
    edit = text if mode == USE_TEXT else None
    _start(store, str(run.run_id), node, edit, changes, key)


def _start(
    store: TraceStore,
    run_id: str,
    node: Node,
    edit: str | None,
    changes: dict[str, Any],
    api_key: str | None,
) -> None:
    is_code = node.kind == "code"

    def fork(job: Job[RunResult]) -> RunResult:
        # the key lives in this closure only: fork_run hands it to the model client, not the trace
        return fork_run(
            store,
            run_id,
            node.node_id,
            response=None if is_code else edit,
            code=edit if is_code else None,
            changes=changes,
            api_key=api_key,
            cancel=job.cancel,
        )

    job = jobs().start(f"fork-{new_id()}", fork, what="The fork")
    st.session_state.setdefault(TASKS, {})[node.node_id] = (job.job_id, time.time())


def find_fork(store: TraceStore, source: str, node_id: str, since: float) -> str | None:
    """The id of a fork of `source` at `node_id` started after `since` (fork_run picks the id
    itself, so a fork still running is found through its root's meta)."""
    for run in store.list_runs(limit=20):
        if (run.created_at or 0) < since - 1:
            break
        root = store.node(str(run.run_id))
        forked = root.meta.get("forked_from") if root is not None else None
        if isinstance(forked, dict) and (forked.get("run_id"), forked.get("node_id")) == (
            source,
            node_id,
        ):
            return str(run.run_id)
    return None


def _fork_status(store: TraceStore, source: str, node_id: str, task_id: str, since: float) -> None:
    live = jobs().get(task_id)
    if live is None:
        return  # the server restarted: the fork, if it ran, is in the run list
    timer = POLL_S if live.running else None

    def status() -> None:
        now = jobs().get(task_id)
        if now is None:
            return
        if timer is not None and not now.running:
            st.rerun()  # the poll timer is fixed when the fragment is defined: drop it
        if now.running:
            found = find_fork(store, source, node_id, since)
            st.info("⏳ The fork is running in the background; the page stays usable.")
            if found:
                explorer_button(f"Open the fork {found} (still running)", found)
        elif now.crash is not None or now.result is None:
            st.error("The fork could not run:")
            st.text(now.crash or "it stopped without a result")
        else:
            st.success(f"The fork finished: {status_badge(now.result.status)}.")
            explorer_button(f"Open the fork {now.result.run_id}", now.result.run_id)

    st.fragment(run_every=timer)(status)()


# ---- playground ------------------------------------------------------------------------------


def _playground(store: TraceStore, run: RunSummary, node: Node) -> None:
    full = store.node(node.node_id) or node
    config = _config(store, run)
    nid = node.node_id
    with st.expander("Ask again (playground)", expanded=False):
        st.caption("Send this prompt, edited or not, to a model once. Nothing is traced.")
        with st.form(f"ask_form_{nid}", border=False):
            prompt = st.text_area("Prompt", value=full.input or "", height=200, key=f"ask_p_{nid}")
            left, right = st.columns(2)
            model = left.text_input("Model", value=full.model or "", key=f"ask_model_{nid}")
            api_base = right.text_input(
                "API base", value=str(config.get("api_base") or ""), key=f"ask_base_{nid}"
            )
            api_key = st.text_input(
                "API key (this browser session only; never saved)",
                type="password",
                key=f"ask_key_{nid}",
            )
            asked = st.form_submit_button("Ask")
        answers = st.session_state.setdefault(ANSWERS, {})
        if asked:
            with st.spinner("Asking the model…"):
                answers[nid] = _ask(
                    prompt,
                    model.strip(),
                    api_base.strip() or None,
                    api_key.strip() or session_key(model.strip(), api_base=api_base.strip()),
                )
        answer = answers.get(nid)
        if answer is None:
            return
        if answer[0] == "error":
            st.error("The model call failed:")
            st.text(answer[1])
            return
        old, new = st.columns(2)
        with old:
            st.caption("Recorded answer")
            st.text(full.output or "(none)")
        with new:
            st.caption("New answer")
            st.text(answer[1] or "(empty)")
            st.text(f"from {answer[2]}")


def _ask(prompt: str, model: str, api_base: str | None, api_key: str | None) -> tuple[str, ...]:
    if not model:
        return ("error", "Type a model name.")
    try:
        done = ask_again(prompt, model, api_base=api_base, api_key=api_key)
    except ModelError as exc:
        return ("error", str(exc))
    except Exception as exc:  # the message for the user, the traceback for the server log
        log.exception("playground call failed")
        return ("error", f"{type(exc).__name__}: {exc}")
    return ("ok", done.text, model)
