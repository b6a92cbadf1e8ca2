"""Keys never land in a trace or back in model code.

Every text a run records, and everything handed to or returned from model code, passes through
the run's Scrubber: the key the user typed and the keys in the app's environment
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, any `*_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`) are
replaced by `***`. Exact values only: a pattern would also rewrite harmless document text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rlm_core.types import Node

MASK = "***"
MIN_SECRET_CHARS = 8
"""Shorter values are not treated as keys: masking them would mangle ordinary text."""
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_NODE_TEXTS = ("model", "input", "output", "code", "stdout", "stderr", "model_view", "error")


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment variables whose names say they hold a key."""
    env = os.environ if environ is None else environ
    return [value for name, value in env.items() if _SECRET_NAME.search(name)]


class Scrubber:
    """Replaces known secret values with `***` in texts, JSON-like values and nodes."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        # longest first: a key that contains another one is masked whole
        self.secrets = sorted(found, key=len, reverse=True)

    @classmethod
    def for_run(cls, api_key: str | None = None) -> Scrubber:
        """The key the user typed for this run, and the environment's keys."""
        return cls([api_key, *environment_secrets()])

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:  # a scan without a copy: most texts hold no key
                text = text.replace(secret, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A str, or lists and dicts of them (keys included), with every secret masked; the
        same object when nothing needed masking."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            items = [self.value(v) for v in value]
            changed = any(a is not b for a, b in zip(items, value, strict=True))
            return type(value)(items) if changed else value
        if isinstance(value, dict):
            pairs = [(self.value(k), self.value(v)) for k, v in value.items()]
            changed = any(
                a is not k or b is not v
                for (a, b), (k, v) in zip(pairs, value.items(), strict=True)
            )
            return dict(pairs) if changed else value
        return value

    def node(self, node: Node) -> Node:
        """Mask secrets in a node in place (its texts and meta), so what is recorded and what
        the engine goes on to show the model are the same clean text."""
        if not self.secrets:
            return node
        for name in _NODE_TEXTS:
            text = getattr(node, name)
            if isinstance(text, str):
                setattr(node, name, self.text(text))
        node.meta = self.value(node.meta)
        return node
