"""The one seam every model sits behind: `complete(messages, *, deadline, cancel)`.

Implementations are bound to one model name: litellm (`litellm_client.py`), a `local/` GGUF
file (`local.py`), the scripted `demo/` models (`scripted.py`) and replay (`replay.py`). Tests
add their own by duck typing; nothing inherits.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol

from rlm_core.types import Completion

Role = Literal["root", "sub"]
"""What a model is asked to be: a root that writes REPL code, or a sub model answering prompts."""


class Model(Protocol):
    name: str
    """The model string the user gave (`openai/gpt-5-mini`, `local/…gguf`, `demo/sub`)."""

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        """One answer, of at most `max_output_tokens` tokens when given. `deadline` (epoch
        seconds) and `cancel` bound every wait inside the call: a run's time limit or Stop must
        not sit out a retry's back-off."""
        ...
