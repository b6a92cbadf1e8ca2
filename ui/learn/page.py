"""The Learn page: a guided walkthrough of a bundled example run, one node per step, with a
narration naming the pattern in use, the growing graph with its data flow, and the document slice.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from rlm_core.analysis import narrate, views
from rlm_core.analysis.graph import vis_payload
from rlm_core.exchange.jsonl import import_file
from rlm_core.exchange.rlms import ImportFormatError, RunExists
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import Node, RunSummary
from ui import document_view
from ui.common import context_text, full_node, store
from ui.graph_component import graph
from ui.widgets import explorer_link, show_text

_log = logging.getLogger(__name__)
EXAMPLE_KEY = "learn_example"
GRAPH_KEY = "learn_graph"
CURRENT_COLOUR = "#d62728"

INTRO = """
A language model can only read so much at once: its *context window*. The usual way to ask about a
long document is to **stuff** as much of it as fits into the prompt and hope the answer is in
there. Past the window, text is cut off; well before it, answers get vaguer as the prompt grows.

A **Recursive Language Model (RLM)** turns this around (Zhang, Kraska & Khattab, *Recursive
Language Models*, Algorithm 1):

1. **The context is a variable.** The document is loaded into a Python REPL as `context`. The
   root model is told only how long it is and what type it has, never the text.
2. **The model writes code.** Each turn, the root model writes a little Python: look at a sample,
   search with a regular expression, cut the text into pieces. It sees only the short printout.
3. **Sub-calls are functions.** Inside that code, `llm_query(prompt)` asks a sub model about one
   piece and returns its answer as a string; `rlm_query` hands a piece to a whole child RLM.
4. **The answer is built in variables.** Answers land in REPL variables, code combines them, and
   `FINAL_VAR(name)` returns one of them as the answer.

Step through a recorded run below. Each step is one node of the trace, in the order it happened.
"""

SUMMARY = """
**What you just saw.** The root model never read the document. It treated the document like a
file on disk: it measured it, searched it with code, cut out the parts worth reading, and paid a
sub model (or a child RLM) to read only those parts. The sub-answers came back as ordinary strings
in ordinary variables, code combined them, and the answer was returned from a variable.

**Why that beats stuffing the window.** The document can be far larger than any window, because
only small slices ever travel to a model. Each model call gets a short, focused prompt instead of
a huge one. And every step is a piece of code you can inspect: which text was read, by which call,
and which answer flowed into the result. When a run gets it wrong, the trace shows where: the
Explorer's *Coverage* and *Where is X?* panels show which parts no model ever saw.
"""


def bundled(s: TraceStore) -> dict[str, str]:
    """run id -> title of each bundled example, imported into the store the first time."""
    out: dict[str, str] = {}
    for name, title in narrate.EXAMPLES.items():
        path = narrate.LEARN_DIR / name
        try:
            run_id = narrate.example_run_id(path)
        except (OSError, ValueError):
            _log.exception("cannot read the example %s", path)
            continue
        if run_id is None:
            continue
        try:
            if s.get_run(run_id) is None:
                import_file(s, path)
        except RunExists:
            pass  # stored meanwhile by another session
        except (OSError, ImportFormatError, ValueError):
            _log.exception("cannot import the example %s", path)
            continue
        out[run_id] = title
    return out


def _step_key(run_id: str) -> str:
    return f"learn_step_{run_id}"


def _go(key: str, to: int) -> None:
    st.session_state[key] = to


def render() -> None:
    st.title("Learn: how a recursive language model works")
    st.markdown(INTRO)
    s = store()
    examples = bundled(s)
    if not examples:
        st.error("The bundled example runs are missing (examples/learn/*.jsonl).")
        return
    run_id = st.radio(
        "Example run",
        list(examples),
        format_func=lambda r: examples.get(r, r),
        key=EXAMPLE_KEY,
        horizontal=True,
    )
    run = s.get_run(run_id) or RunSummary(run_id=run_id)
    nodes = s.nodes(run_id)
    if not nodes:
        st.error("This example run has no nodes.")
        return
    order = views.step_order(nodes)
    key = _step_key(run_id)
    i = max(0, min(int(st.session_state.get(key, 0)), len(order) - 1))
    st.session_state[key] = i
    st.text(f"Question: {run.question or '—'}")
    _controls(key, i, len(order))
    try:
        _step(s, run, nodes, order, i)
    except Exception:  # odd stored data: a message here, the traceback in the log
        _log.exception("learn step %s failed", i)
        st.error("This step could not be shown.")
    if i == len(order) - 1:
        st.success("You reached the end of the run.")
        st.markdown(SUMMARY)
    else:
        with st.expander("The summary, in short (also shown at the last step)"):
            st.markdown(SUMMARY)


def _controls(key: str, i: int, count: int) -> None:
    cols = st.columns([1, 1, 1, 4], vertical_alignment="center")
    cols[0].button("« Start", key="learn_first", on_click=_go, args=(key, 0), disabled=i == 0)
    cols[1].button("‹ Back", key="learn_prev", on_click=_go, args=(key, i - 1), disabled=i == 0)
    cols[2].button(
        "Next ›",
        key="learn_next",
        on_click=_go,
        args=(key, i + 1),
        disabled=i >= count - 1,
        type="primary",
    )
    cols[3].progress((i + 1) / count, text=f"Step {i + 1} of {count}")


def _step(s: TraceStore, run: RunSummary, nodes: list[Node], order: list[str], i: int) -> None:
    by_id = {n.node_id: n for n in nodes}
    node = full_node(s, by_id[order[i]])
    text = context_text(s, run)
    total = len(text) if text is not None else int(run.context_chars or 0)
    step = narrate.narrate(node, nodes, total)
    st.subheader(step.title)
    if step.patterns:
        badges = st.columns(len(step.patterns) + 4)
        for col, name in zip(badges, step.patterns, strict=False):
            with col:
                st.badge(f"pattern: {name}", color="orange")
    st.markdown(step.text)
    left, right = st.columns([1, 1], gap="medium")
    with left:
        st.caption(
            "The run so far; this step glows red. Dashed orange edges: where sub-call answers went."
        )
        shown = views.nodes_up_to(nodes, node.node_id)
        clicked, moved = graph(_marked(vis_payload(shown), node.node_id), key=GRAPH_KEY, height=420)
        target = (
            order.index(clicked) if clicked is not None and clicked in by_id else i + (moved or 0)
        )
        if target != i and 0 <= target < len(order):
            st.session_state[_step_key(str(run.run_id))] = target
            st.rerun()
        # the link's ids are URL-encoded: it stays one link whatever the run is called
        st.markdown(f"[Open this run in the Explorer]({explorer_link(str(run.run_id))})")
    with right:
        _holds(node)
        st.caption("The document, with this step's slice highlighted")
        if text is None:
            st.info("The stored document of this run is not available.")
        else:
            marked, printed = document_view.ranges_of(node, nodes)
            document_view.show(
                text,
                marked,
                shown=printed,
                key=f"learn_{node.node_id}",
                empty="This step did not touch the document directly.",
            )


def _marked(payload: dict[str, Any], current: str) -> dict[str, Any]:
    """The current node drawn with a red glow instead of being selected: selecting would zoom
    the view onto it, while a growing graph with nothing selected keeps fitting the whole run."""
    glow = {"enabled": True, "color": CURRENT_COLOUR, "size": 18, "x": 0, "y": 0}
    payload["nodes"] = [
        {**n, "borderWidth": 4, "color": {**n["color"], "border": CURRENT_COLOUR}, "shadow": glow}
        if n["id"] == current
        else n
        for n in payload["nodes"]
    ]
    return payload


def _holds(node: Node) -> None:
    """The one text that matters most for this kind of node, as plain text."""
    what = {
        "code": ("The code the root model wrote", node.code, "python"),
        "lm": ("The root model's reply", node.output, None),
        "llm_query": ("What the sub model answered", node.output, None),
        "rlm_query": ("What the child RLM answered", node.output, None),
        "final": ("The final answer", node.output, None),
        "run": ("The question", node.input, None),
    }.get(node.kind)
    if what is None:
        return
    label, body, language = what
    st.caption(label)
    show_text(body, key=f"learn_{node.node_id}_{node.kind}", language=language)
    if node.kind == "code" and node.model_view:
        with st.expander("What the root model was shown of this cell's output"):
            show_text(node.model_view, key=f"learn_{node.node_id}_view")
