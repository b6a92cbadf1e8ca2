"""The scripted `demo/` models: offline, deterministic stand-ins for language models, for
teaching, offline use and tests. `ScriptedModel` runs any policy (messages -> reply) behind the
`Model` seam; the scripted roots that write REPL code speak the engine's protocol and live in
`engine/scripted.py` (the strategies' own in `strategies/policies.py`); the extractive sub
model is here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from rlm_core.types import Completion

Policy = Callable[[list[dict[str, Any]]], str]
"""A scripted model: the messages so far -> its reply."""

DEMO_MODELS = {
    "demo/root": "scripted root: probe, regex filter, chunk, llm_query_batched, combine",
    "demo/recursive": "scripted root that hands chunks to child RLMs with rlm_query_batched",
    "demo/sub": "scripted sub model: answers with the sentence that best matches the question",
}
NOT_FOUND = "NOT FOUND"
DEMO_WINDOW = 32_000
"""The input window the demo models claim (the engine tells the root how much a sub-call takes)."""
_STOPWORDS = set(
    [
        "what",
        "which",
        "where",
        "when",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "does",
        "did",
        "do",
        "is",
        "are",
        "was",
        "were",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "for",
        "to",
        "from",
        "with",
        "and",
        "or",
        "not",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "it",
        "its",
        "be",
        "been",
        "being",
        "by",
        "at",
        "as",
        "about",
        "into",
        "than",
        "then",
        "them",
        "they",
        "you",
        "your",
        "please",
        "tell",
        "give",
        "find",
        "list",
        "name",
        "say",
        "says",
        "said",
    ]
)
_QUESTION_LINE = re.compile(r"^Question: (.+)$", re.MULTILINE)


def is_demo(model: str) -> bool:
    return model.startswith("demo/")


def keywords(question: str) -> list[str]:
    words = re.findall(r"[A-Za-z0-9_'-]+", question)
    return [
        w for w in dict.fromkeys(w.lower() for w in words) if w not in _STOPWORDS and len(w) > 2
    ]


def sub_reply(prompt: str) -> str:
    """The sentence of the prompt's text sharing the most keywords with its question."""
    match = _QUESTION_LINE.search(prompt)
    if match:
        question, body = match.group(1), prompt[match.end() :]
    else:  # the first line asks (as in an rlm_query sent on as llm_query at max depth)
        question, _, rest = prompt.partition("\n")
        body = rest or prompt  # a one-line prompt is its own text
    words = set(keywords(question))
    best, best_score = "", 0
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", body):
        sentence = sentence.strip()
        if not sentence or sentence.startswith(("Answer only", "Excerpt:")):
            continue
        score = len(words & set(keywords(sentence)))
        if score > best_score:
            best, best_score = sentence, score
    needed = 1 if len(words) <= 2 else 2
    if best_score < needed:
        return NOT_FOUND
    return _around_keywords(best, words) if len(best) > 300 else best


def _around_keywords(sentence: str, words: set[str]) -> str:
    """A long run-on 'sentence' cut down to the clause around its first keyword."""
    lower = sentence.lower()
    first = min((i for w in words if (i := lower.find(w)) >= 0), default=0)
    start = sentence.rfind(" ", 0, max(0, sentence.rfind(" ", 0, first)))
    end = sentence.find(".", first)
    end = end + 1 if 0 <= end - first < 300 else first + 200
    return sentence[start + 1 : end].strip()


def sub_policy(messages: list[dict[str, Any]]) -> str:
    return sub_reply(str(messages[-1]["content"]) if messages else "")


class ScriptedModel:
    """A `demo/` model: its policy's reply, usage counted as the characters / 4, free."""

    def __init__(self, name: str, policy: Policy) -> None:
        self.name = name
        self.policy = policy

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        started = time.monotonic()
        text = self.policy(list(messages))
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        return Completion(
            text=text,
            model=self.name,
            tokens_in=prompt_chars // 4 + 1,
            tokens_out=len(text) // 4 + 1,
            cost_usd=0.0,
            latency_s=time.monotonic() - started,
            finish_reason="stop",
        )
