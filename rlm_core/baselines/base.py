"""What every baseline shares: a run without a REPL loop, traced model calls, and fitting text
into a model's window (cut with an explicit marker, never silently)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rlm_core import local_model
from rlm_core.engine import Session
from rlm_core.models import context_window, load_litellm
from rlm_core.tree import Tree
from rlm_core.types import Node, NodeKind, new_id

ASSUMED_WINDOW = 32_000
"""Tokens assumed when neither litellm's table nor the caller knows the model's window."""
OUTPUT_RESERVE_TOKENS = 1024
"""Room left in the window for the answer."""
CHARS_PER_TOKEN = 4
_EXACT_COUNT_MAX_CHARS = 2_000_000
"""Longer texts are estimated at CHARS_PER_TOKEN: a tokenizer pass over 100 MB takes minutes."""


def window_tokens(model: str, override: int | None = None) -> tuple[int, str]:
    """The model's input window in tokens and where that number came from."""
    if override:
        return int(override), "option"
    window = (
        local_model.context_window(model) if local_model.is_local(model) else context_window(model)
    )
    return (window, "litellm") if window else (ASSUMED_WINDOW, "assumed")


def count_tokens(model: str, text: str) -> int:
    if model.startswith("demo/") or len(text) > _EXACT_COUNT_MAX_CHARS:
        # the demo provider itself reports chars / 4, so this is exact for it
        return len(text) // CHARS_PER_TOKEN + 1
    if local_model.is_local(model):
        return local_model.count_tokens(model, text)
    try:
        return int(load_litellm().token_counter(model=model, text=text))
    except Exception:
        return len(text) // CHARS_PER_TOKEN + 1


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


def document_text(context: Any) -> str:
    """The context as one text: a dict's parts keep their names as headers (file paths matter)."""
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n\n".join(f"===== {key} =====\n{value}" for key, value in context.items())
    if isinstance(context, list):
        return "\n\n".join(str(item) for item in context)
    return str(context)


class Baseline(Session):
    """A strategy run on the same run tree as an RLM, but without Algorithm 1's loop."""

    strategy = "baseline"
    defaults: ClassVar[dict[str, Any]] = {}
    """The strategy's options and their default values; others are refused."""

    def __init__(
        self,
        tree: Tree,
        context: Any,
        question: str,
        depth: int = 0,
        parent: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tree, context, question, depth, parent)
        unknown = set(options or {}) - set(self.defaults)
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"unknown options for {self.strategy}: {sorted(unknown)}; {known}")
        self.options = {**self.defaults, **(options or {})}
        self.node.meta.update(
            strategy=self.strategy, prompt=f"{self.strategy}-v1", strategy_options=self.options
        )
        self.text = document_text(context)

    def run(self) -> str | None:
        self.tree.tracer.start(self.node)
        return self._recorded(self.answer, lambda: self.last_response.strip() or None)

    def answer(self) -> str | None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        """One plain line for the answer panel (what this strategy could not see, and so on)."""
        self.node.meta["strategy_note"] = text

    def spans(self, start: int, end: int) -> list[list[int]]:
        """Where text[start:end] lies in the original context."""
        if isinstance(self.context, str):
            return [[start, end]] if end > start else []
        return self.tree.index.spans(self.text[start:end])

    def ask(
        self,
        kind: NodeKind,
        model: str,
        messages: list[dict[str, str]],
        *,
        sent: int = 0,
        spans: list[list[int]] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[str, Node]:
        """One traced call: an `lm` node (the strategy's main model) or an `llm_query` node."""
        node = Node(
            node_id=new_id(),
            run_id=self.tree.run_id,
            parent_id=self.node.node_id,
            kind=kind,
            depth=self.depth if kind == "lm" else self.depth + 1,
            seq=next(self._seq),
            input=json.dumps(messages[sent:], ensure_ascii=False)
            if kind == "lm"
            else messages[-1]["content"],
            context_spans=spans or [],
            meta=meta or {},
        )
        if kind == "llm_query":
            self.sub_nodes.append(node)
        self.tree.tracer.start(node)
        done = self.tree.call(model, messages, node)
        if kind == "lm":
            self.last_response = done.text
        return done.text, node

    def fit_document(self, model: str, budget_tokens: int) -> tuple[str, int]:
        """The document's longest prefix that fits the budget, and how many characters were cut
        (also recorded on the run node: a cut is always reported, never silent)."""
        kept = fit(model, self.text, budget_tokens - 40)  # 40: room for the cut marker
        dropped = len(self.text) - len(kept)
        self.node.meta["truncated_chars"] = dropped
        return kept, dropped


def merge_spans(spans: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def with_marker(kept: str, dropped: int) -> str:
    return kept + cut_marker(dropped) if dropped else kept
