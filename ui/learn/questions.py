"""The Learn page's "Questions": five things people ask about RLMs, each answered next to a pair of
runs on the demo models (run live the first time a question is picked, then kept in the session)
with both traces one click away in the Explorer."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from rlm_core.analysis.narrate import pair_outcome
from rlm_core.config import RLMConfig
from rlm_core.context import size_of
from rlm_core.engine.prompts import truncate
from rlm_core.engine.spans import merge_spans
from rlm_core.evaluate.examples import EXAMPLES
from rlm_core.evaluate.scoring import score_for
from rlm_core.strategies.registry import label, run_strategy
from rlm_core.types import Node, RunSummary
from ui.common import store
from ui.context_choice import ContextChoice, verdict
from ui.widgets import explorer_link, status_badge

CACHE = "learn_question_runs"
_log = logging.getLogger(__name__)
RECURSIVE = {"root_model": "demo/recursive", "child_root_model": "demo/recursive"}


@dataclass(frozen=True)
class Side:
    strategy: str
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    key: str
    title: str
    explanation: str
    """Our own static markdown: never model or document text."""
    task: str
    size: int
    left: Side
    right: Side
    extra: str = ""
    """"first_message" or "tree": a view beyond the common table."""
    question_index: int = 0


PAIRS = (
    Pair(
        "rag",
        "How is this different from RAG?",
        "RAG decides what the model may read *before* anything has been understood: a keyword "
        "ranking (BM25 here) picks k chunks and the rest of the document does not exist for the "
        "model. In this chronicle the vault, codes and secrets come up in a dozen passages of "
        "idle remarks, each naming those words more often than the one sentence that holds the "
        "code: BM25's top 5 chunks are all remarks, and RAG's model answers from them. An RLM "
        "decides what to read *while* it works: its code finds every mention, hands each "
        "passage to a sub model and keeps the one answer that came back. The same gap opens "
        "when the answer depends on every record (counting, aggregating): no k chunks hold all "
        "of it. The columns *read by code* and *seen by a model* measure how much of the "
        "document each run touched; open the RAG trace to see which chunks it retrieved.",
        "needle_decoys",
        60_000,
        Side("rlm"),
        Side("rag"),
    ),
    Pair(
        "summary",
        "Is repeated summarization the only alternative?",
        "Summarizing until it fits (the paper's compaction baseline) reads everything, but it "
        "decides what matters part by part, before it knows which detail the answer needs, and "
        "it pays a model call over every character in every round. A single number in a long "
        "log is exactly what a summary drops first. An RLM never compresses the document: it "
        "stays whole in the REPL, and model calls go only to the slices the code picked. "
        "Compare the sub-calls and tokens of the two runs.",
        "needle",
        300_000,
        Side("rlm"),
        Side("summarize"),
    ),
    Pair(
        "prompt",
        "Does the root model really never see the prompt?",
        "Yes: below are the two root models' first messages, read back from the traces. The "
        "RLM's root gets metadata only (the type and size of the context, and the question); the "
        "document is a variable in the REPL, and the root learns about it only through what its "
        "code prints, which is cut to a fixed length. The Algorithm 2 agent gets the document "
        "itself as its first message: the window is full before it has done anything, and a "
        "document larger than the window cannot be taken in at all.",
        "needle",
        30_000,
        Side("rlm"),
        Side("algorithm2"),
        extra="first_message",
    ),
    Pair(
        "depth",
        "Is depth 1 really recursion?",
        "Here *depth* counts levels of child RLMs. At max depth 1 the root's `rlm_query` starts "
        "child RLMs, each with its own REPL over the piece it was handed, and the children's own "
        "`rlm_query` calls become plain sub-model calls; at depth 2 the children start children. "
        "The recursion that matters is already at depth 1: a model calls models from inside a "
        "program it wrote, on inputs the program built, as many times as the program says. "
        "Deeper trees help only when one level of splitting still leaves pieces too large for a "
        "sub model, and they cost more calls. Both runs use the scripted `demo/recursive` root. "
        "If their answers are wrong, open the deepest sub-model call in the Explorer: at the "
        "deepest level `rlm_query` falls back to a plain sub-model call, which is sent the prompt "
        "but not the `context` the code passed along.",
        "needle",
        100_000,
        Side("rlm-depth-1", RECURSIVE),
        Side("rlm-depth-2", RECURSIVE),
        extra="tree",
    ),
    Pair(
        "codeact",
        "What is wrong with a CodeAct agent that has a sub-LLM tool?",
        "It looks like an RLM but differs where it counts. The document is in the agent's window, "
        "so a document longer than the window is cut, and once the history fills up it is "
        "compacted away (see the note on the right). Its code runs in a sandbox that cannot see "
        "the document: the agent must copy passages into the code through its own output. Every "
        "sub-LLM call is one action the model writes out, so a thousand chunks take a thousand "
        "turns, where an RLM's code makes them in one `llm_query_batched` loop. And its answer is "
        "whatever the Finish action says, not a value the code computed.",
        "needle",
        300_000,
        Side("rlm"),
        Side("algorithm2", options={"compact_at_tokens": 16_250}),
    ),
)
BY_KEY = {p.key: p for p in PAIRS}


def _run_pair(pair: Pair) -> dict[str, Any]:
    """Both sides at once on the demo models; the runs land in the app's store."""
    example = EXAMPLES[pair.task]
    context = example.build(pair.size)
    question = example.questions[pair.question_index]
    trace_store = store()

    def one(side: Side) -> str:
        config = RLMConfig(**side.config)
        meta = {"learn_question": pair.key}
        return run_strategy(
            side.strategy,
            context,
            question,
            config,
            store=trace_store,
            run_meta=meta,
            **side.options,
        ).run_id

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(one, (pair.left, pair.right)))
    choice = ContextChoice(
        None,
        example.title,
        size_of(context),
        example.questions,
        example.answers(context),
        example.scoring,
    )
    return {"runs": ids, "choice": choice, "question": question}


def _runs(pair: Pair) -> dict[str, Any] | None:
    cache = st.session_state.setdefault(CACHE, {})
    done = cache.get(pair.key)
    if done is None or any(store().get_run(r) is None for r in done["runs"]):
        with st.spinner("Running the pair on the demo models…"):
            try:
                cache[pair.key] = done = _run_pair(pair)
            except Exception as exc:  # the log gets the traceback, the page one line
                _log.exception("learn question %s failed", pair.key)
                st.error(f"The demo runs failed: {type(exc).__name__}.")
                return None
    return dict(done)


def _share(nodes: list[Node], kinds: tuple[str, ...], total: int) -> str:
    spans = merge_spans([list(s) for n in nodes if n.kind in kinds for s in n.context_spans])
    return f"{sum(e - s for s, e in spans) / max(1, total):.0%}"


def stats(pair: Pair, done: dict[str, Any]) -> pd.DataFrame:
    lines = []
    for side, run_id in zip((pair.left, pair.right), done["runs"], strict=True):
        run, nodes = store().get_run(run_id) or RunSummary(run_id), store().nodes(run_id)
        root = store().node(run_id)
        total = int(run.context_chars or 0)
        lines.append(
            {
                "strategy": label(side.strategy),
                "status": status_badge(run.status),
                "answer": run.answer or "",
                "check": verdict(done["choice"], done["question"], run.answer) or "—",
                "model calls": sum(1 for n in nodes if n.kind in ("lm", "llm_query")),
                "sub-calls": sum(1 for n in nodes if n.kind in ("llm_query", "rlm_query")),
                "tokens": (run.tokens_in or 0) + (run.tokens_out or 0),
                "seen by a model": _share(nodes, ("lm", "llm_query"), total),
                "read by code": _share(nodes, ("code",), total),
                "note": str((root.meta if root else {}).get("strategy_note") or ""),
                "trace": explorer_link(run_id),
            }
        )
    return pd.DataFrame(lines)


def first_user_message(run_id: str) -> str:
    """What the root model read first, from its first traced call."""
    first = next((n for n in store().nodes(run_id) if n.kind == "lm" and n.depth == 0), None)
    full = store().node(first.node_id) if first else None
    try:
        messages = json.loads(full.input or "[]") if full else []
    except ValueError:
        return ""
    return next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")


def outline(run_id: str) -> str:
    """The tree's RLMs, indented by depth, with the sub-calls each made."""
    nodes = store().nodes(run_id)
    by_id = {n.node_id: n for n in nodes}

    def owner(n: Node) -> str | None:
        parent = by_id.get(n.parent_id or "")
        while parent is not None and parent.kind != "run":
            parent = by_id.get(parent.parent_id or "")
        return parent.node_id if parent else None

    lines = []
    for run in (n for n in nodes if n.kind == "run"):
        made = [
            n.kind
            for n in nodes
            if n.kind in ("llm_query", "rlm_query") and owner(n) == run.node_id
        ]
        lines.append(
            f"{'    ' * run.depth}RLM at depth {run.depth}: {made.count('rlm_query')} child RLMs, "
            f"{made.count('llm_query')} sub-model calls"
        )
    return "\n".join(lines)


def render() -> None:
    """The Questions section: pick a question, read the answer next to its two traces."""
    st.header("Questions")
    st.caption(
        "Each answer comes with two runs on the offline demo models, made the first time you "
        "pick the question (a few seconds) and kept for this session."
    )
    key = st.radio(
        "Question",
        [p.key for p in PAIRS],
        index=None,
        key="learn_question",
        format_func=lambda k: BY_KEY[k].title,
    )
    if key is None:
        st.caption("Pick a question: its two runs start then (the page stays fast until you do).")
        return
    pair = BY_KEY[str(key)]
    st.markdown(pair.explanation)
    done = _runs(pair)
    if done is None:
        return
    st.dataframe(
        stats(pair, done),
        hide_index=True,
        column_config={"trace": st.column_config.LinkColumn("trace", display_text="open")},
    )
    q, c = done["question"], done["choice"]
    sides = (pair.left, pair.right)
    answers = [run.answer if (run := store().get_run(r)) else None for r in done["runs"]]
    points = [score_for(q, c.questions, c.answers, c.scoring, a) for a in answers]
    outcome = pair_outcome([(label(s.strategy), p) for s, p in zip(sides, points, strict=True)])
    if outcome:
        st.markdown(f"**{outcome}**")
    columns = st.columns(2)
    for column, side, run_id in zip(columns, (pair.left, pair.right), done["runs"], strict=True):
        with column:
            st.subheader(label(side.strategy))
            if pair.extra == "first_message":
                message = first_user_message(run_id)
                st.caption(f"The root's first message: {len(message):,} characters")
                st.code(truncate(message, 1_500), language=None)
            elif pair.extra == "tree":
                st.code(outline(run_id), language=None)
            # run ids are hex digits we made: safe inside markdown
            st.markdown(f"🔎 [Open this trace in the Explorer]({explorer_link(run_id)})")
