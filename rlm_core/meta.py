"""What a node's `meta` holds, per kind: one TypedDict each, every key with its meaning.

`Node.meta` stays a plain dict (it round-trips through JSON), but every key written anywhere is
declared here; the README's node-metadata table is generated from these declarations and a test
runs every kind of run and fails on a key that is not declared. All keys are optional: a key is
written when it applies.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, TypedDict

from rlm_core.types import Node, NodeKind


class CommonMeta(TypedDict, total=False):
    blobs: Annotated[dict[str, str], "texts over 64 KB stored once by hash: field -> sha256"]
    finish_reason: Annotated[str, "why the model stopped (`stop`, `length`, ...); model calls"]
    replayed: Annotated[bool, "answered from a recorded run, not by the model (replay, fork)"]
    retries: Annotated[int, "attempts retried before the one that answered or failed"]
    retry_errors: Annotated[list[str], "what went wrong in each retried attempt"]
    iteration: Annotated[int, "the root turn (1-based) the node belongs to"]
    cached_tokens: Annotated[int, "prompt tokens the provider served from its prompt cache"]


class RunMeta(CommonMeta, total=False):
    question: Annotated[str, "the question (a child run's: the prompt it was handed)"]
    root_model: Annotated[str, "model answering this RLM's root turns"]
    sub_model: Annotated[str | None, "model behind `llm_query`"]
    config: Annotated[dict[str, Any], "RLMConfig without the key"]
    prompt: Annotated[str, "prompt variant: `rlm-v1`, `rlm-small-v2`, `<strategy>-v1`"]
    prompt_reason: Annotated[str, "why that variant: chosen, or what `auto` went by"]
    output_chars: Annotated[int, "a cell's output shown to the root was cut to this"]
    context_sha: Annotated[str, "sha256 of the context blob"]
    context_kind: Annotated[str, "`text` (a str) or `json` (a list or dict)"]
    context_chars: Annotated[int, "characters of the context (its parts added up)"]
    context_shape: Annotated[str, "what the root model was told about the context"]
    pid: Annotated[int, "process that ran it (a dead one: the run is `interrupted`)"]
    isolation: Annotated[
        str,
        "what confined its REPL worker: `bubblewrap`, `namespaces` or `process`, then "
        "`+seccomp` (sockets refused), `+uid` (a uid of its own); README: The sandbox",
    ]
    host: Annotated[str, "machine that ran it"]
    iterations: Annotated[int, "root turns taken"]
    llm_calls: Annotated[int, "model calls in the whole tree (root run)"]
    answer: Annotated[str | None, "the answer, or the best partial answer after a limit"]
    limit: Annotated[str | None, "the limit that ended the run"]
    refused_guesses: Annotated[
        list[int], "turns whose written-out FINAL was refused as a guess (small prompt)"
    ]
    ignored_text_finals: Annotated[list[int], "turns with a text FINAL beside code (ignored)"]
    last_chance: Annotated[
        dict[str, Any], "the last-chance reply not taken as the answer (`reply`, `taken`, `why`)"
    ]
    strategy: Annotated[str, "the strategy that ran (`rlm`, `plain`, `rag`, ...)"]
    strategy_options: Annotated[dict[str, Any], "the strategy's options"]
    strategy_note: Annotated[str, "one line on what the strategy could not see"]
    truncated_chars: Annotated[int, "characters of the document cut to fit a window"]
    summary_rounds: Annotated[int, "rounds of summaries (summarize)"]
    summary_stop: Annotated[str, "why summarizing stopped: `fits`, `max_rounds`, `did_not_shrink`"]
    window_tokens: Annotated[int, "the window the strategy fitted text into"]
    window_source: Annotated[str, "where that window came from: `litellm`, `option`, `assumed`"]
    compact_at_tokens: Annotated[int, "history size that triggers compaction (Algorithm 2)"]
    compactions: Annotated[int, "times the history was compacted (Algorithm 2)"]
    forked_from: Annotated[dict[str, Any], "run, node and edits this run was forked from"]
    replay_of: Annotated[str, "the run this one replayed"]
    eval_id: Annotated[str, "the evaluation this run belongs to"]
    task: Annotated[str, "the evaluation task"]
    size: Annotated[int, "the evaluation's context size"]
    learn_question: Annotated[str, "the Learn page question this run illustrates"]
    imported_from: Annotated[str, "format it was imported from (`jsonl`, `journal`, `rlms-logger`)"]
    source_file: Annotated[str, "file it was imported from"]
    otlp: Annotated[
        dict[str, Any],
        "live OTLP export: `endpoint`, `spans` sent, `dropped` (the collector refused or never "
        "answered), `unconfirmed` (still queued when the run ended)",
    ]


class LmMeta(CommonMeta, total=False):
    messages_before: Annotated[int, "messages sent in earlier calls (`input` holds the rest)"]
    prefix_tokens: Annotated[
        int, "tokens of the previous root call (prompt and reply) this prompt starts with"
    ]
    prompt_is_full: Annotated[bool, "`input` is the whole prompt, not a delta (imported runs)"]
    took_back: Annotated[int, "refused replies taken out (with their refusals) before this call"]
    engine_turn: Annotated[int, "index of the reply the engine wrote: a search run for the model"]
    compactions: Annotated[int, "compactions before this call (Algorithm 2)"]
    compaction: Annotated[int, "this call compacts the history, the n-th time (Algorithm 2)"]
    compacted_messages: Annotated[int, "messages replaced by the summary"]
    compacted_tokens: Annotated[int, "tokens replaced by the summary"]
    rounds: Annotated[int, "summary rounds before this answer (summarize)"]
    stop: Annotated[str, "why summarizing stopped (summarize)"]
    truncated_chars: Annotated[int, "characters cut to fit the window"]
    window_tokens: Annotated[int, "the model's window"]
    window_source: Annotated[str, "where the window came from"]
    document_chars: Annotated[int, "characters of the whole document (plain)"]
    chunks: Annotated[int, "chunks the document was cut into (RAG)"]
    chunk_chars: Annotated[int, "characters per chunk (RAG)"]
    top_k: Annotated[int, "chunks retrieved (RAG)"]
    retrieved: Annotated[list[dict[str, Any]], "rank, chunk, score, start, end of each (RAG)"]
    dropped_for_window: Annotated[int, "retrieved chunks left out to fit the window (RAG)"]


class CodeMeta(CommonMeta, total=False):
    block: Annotated[int, "the code block's position in its response (0: a text FINAL run)"]
    variables: Annotated[dict[str, str], "REPL variables after the cell: name -> type and size"]
    restarted: Annotated[bool, "the worker died or was killed and started again"]
    timed_out: Annotated[bool, "the cell ran past its time limit"]
    stdout_chars: Annotated[int, "everything printed, including what was not kept"]
    assignments: Annotated[dict[str, list[str]], "variable -> sub-calls whose text it kept"]
    shown_spans: Annotated[list[list[int]], "context ranges in the output shown to the root"]
    from_text_tag: Annotated[bool, "the cell ran a FINAL written as text"]
    ran_for_model: Annotated[
        bool, "the engine ran this search: a small model repeated a refused guess instead"
    ]


class SubCallMeta(CommonMeta, total=False):
    batch: Annotated[str, "id shared by the calls of one batched call"]
    batch_index: Annotated[int, "position in the batch"]
    batch_size: Annotated[int, "calls in the batch"]
    refused_calls: Annotated[int, "calls of the batch a limit refused (on the one node for them)"]
    fallback_from: Annotated[str, "`rlm_query` at the deepest level, sent as `llm_query`"]
    no_context_text: Annotated[bool, "the prompt held no text of the context: a guess asked for"]
    used_by: Annotated[list[str], "variables that kept its text (`[]`: dropped)"]
    ambiguous: Annotated[
        list[dict[str, Any]],
        "runs of its text found at several places of the context that nothing told apart, not "
        "in `context_spans`: the first place (`start`, `end`), `occurrences` (null: could not "
        "be counted) and the candidate `places`",
    ]
    child_run: Annotated[str, "the child run's node id (`rlm_query`)"]
    round: Annotated[int, "summary round (summarize)"]
    part: Annotated[int, "part of the text summarized (summarize)"]
    error_type: Annotated[str, "the provider's error type (imported runs)"]
    status_code: Annotated[int, "the provider's HTTP status (imported runs)"]


class FinalMeta(CommonMeta, total=False):
    var: Annotated[str | None, "variable the answer came from (`FINAL_VAR`)"]
    from_node: Annotated[str | None, "code node that ran FINAL"]
    sources: Annotated[list[str], "sub-calls whose text the answer holds"]


META: dict[NodeKind, type] = {
    "run": RunMeta,
    "lm": LmMeta,
    "code": CodeMeta,
    "llm_query": SubCallMeta,
    "rlm_query": SubCallMeta,
    "final": FinalMeta,
}


def declared(kind: NodeKind) -> dict[str, tuple[Any, str]]:
    """key -> (type, meaning) of the keys a node of this kind may carry."""
    hints = typing.get_type_hints(META[kind], include_extras=True)
    return {key: (hint.__origin__, hint.__metadata__[0]) for key, hint in hints.items()}


def undeclared(node: Node) -> list[str]:
    """Keys of a node's meta that are not declared for its kind."""
    return sorted(set(node.meta) - set(declared(node.kind)))


def readme_table() -> str:
    """The README's node-metadata table (a test keeps them equal)."""
    sections = [
        ("all", CommonMeta),
        ("run", RunMeta),
        ("lm", LmMeta),
        ("code", CodeMeta),
        ("llm_query, rlm_query", SubCallMeta),
        ("final", FinalMeta),
    ]
    rows = ["| kinds | key | meaning |", "|---|---|---|"]
    common = typing.get_type_hints(CommonMeta, include_extras=True)
    for kinds, cls in sections:
        for key, hint in typing.get_type_hints(cls, include_extras=True).items():
            if cls is CommonMeta or key not in common:
                rows.append(f"| {kinds} | `{key}` | {hint.__metadata__[0]} |")
    return "\n".join(rows)
