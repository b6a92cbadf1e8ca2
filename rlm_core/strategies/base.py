"""What every baseline shares: a run without a REPL loop, traced model calls, and fitting text
into a model's window (cut with an explicit marker, never silently)."""

from __future__ import annotations

from typing import Any, ClassVar

from rlm_core.context import labelled_text
from rlm_core.engine.provenance import spans_in
from rlm_core.engine.recorder import Recorder
from rlm_core.models.facts import count_tokens
from rlm_core.types import Node, NodeKind

OUTPUT_RESERVE_TOKENS = 1024
"""Room left in the window for the answer."""


def fit(model: str, text: str, budget_tokens: int) -> str:
    """The longest prefix of `text` that fits `budget_tokens` (found in a few proportional cuts)."""
    budget_tokens = max(budget_tokens, 0)
    for _ in range(6):
        used = count_tokens(model, text)
        if used <= budget_tokens:
            return text
        keep = int(len(text) * budget_tokens / used * 0.97)
        text = text[: max(0, min(keep, len(text) - 1))]
    return text


def cut_marker(dropped: int) -> str:
    return (
        f"\n\n[... the remaining {dropped:,} characters of the document did not fit in the "
        "window and were cut here ...]"
    )


class Baseline:
    """A strategy run on the same run tree as an RLM, but without Algorithm 1's loop: a
    `Program` (engine/rlm.py) that records through the root's Recorder."""

    strategy = "baseline"
    defaults: ClassVar[dict[str, Any]] = {}
    """The strategy's options and their default values; others are refused."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        unknown = set(options or {}) - set(self.defaults)
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"unknown options for {self.strategy}: {sorted(unknown)}; {known}")
        self.options = {**self.defaults, **(options or {})}

    def __call__(self, rec: Recorder) -> str | None:
        self.rec, self.run, self.question = rec, rec.run, rec.question
        self.config = rec.run.config
        self.root_model = rec.model.name
        rec.node.meta.update(
            strategy=self.strategy,
            prompt=f"{self.strategy}-v1",
            prompt_reason="the strategy's own prompt",
            strategy_options=self.options,
        )
        self.text = labelled_text(rec.context)
        return rec.recorded(self.answer, lambda: rec.last_response.strip() or None)

    def answer(self) -> str | None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        """One plain line for the answer panel (what this strategy could not see, and so on)."""
        self.rec.node.meta["strategy_note"] = text

    def spans(self, start: int, end: int) -> list[list[int]]:
        """Where text[start:end] lies in the original context."""
        if isinstance(self.rec.context, str):
            return [[start, end]] if end > start else []
        return spans_in(self.text[start:end], self.run.index)

    def ask(
        self,
        kind: NodeKind,
        messages: list[dict[str, str]],
        *,
        sent: int = 0,
        spans: list[list[int]] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[str, Node]:
        """One traced call: an `lm` node (the root model) or an `llm_query` node (the sub model)."""
        model = self.rec.model if kind == "lm" else self.run.models.sub()
        return self.rec.ask(kind, model, messages, sent=sent, spans=spans, meta=meta)

    def final(self, answer: str, node: Node) -> str:
        return self.rec.final(answer, None, node, [])

    def fit_document(self, model: str, budget_tokens: int) -> tuple[str, int]:
        """The document's longest prefix that fits the budget, and how many characters were cut
        (also recorded on the run node: a cut is always reported, never silent)."""
        kept = fit(model, self.text, budget_tokens - 40)  # 40: room for the cut marker
        dropped = len(self.text) - len(kept)
        self.rec.node.meta["truncated_chars"] = dropped
        return kept, dropped


def with_marker(kept: str, dropped: int) -> str:
    return kept + cut_marker(dropped) if dropped else kept
