"""An engine process for the crash harness: one RLM run with an in-process scripted model.

Usage: python bench/crash_child.py TRACES_DIR [SUB_DELAY_S]. No litellm (it takes seconds to
import), so a trial spends its time in the engine, the journal and DuckDB, where kills land.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlm_core import RLM
from rlm_core.engine import fits
from rlm_core.types import Completion


# The window lookup would import litellm (4-5 s) for a model name that is not real anyway.
def no_window(model: str, config: Any) -> None:
    return None


fits.window_of = no_window

ROOT_CODE = """
parts = [context[i:i + 200] for i in range(0, len(context), 200)]
out = []
for i, part in enumerate(parts[:40]):
    out.append(llm_query(f"q{i}: " + part))
    if i % 10 == 0:
        out += llm_query_batched([f"b{i}-{j}: " + part[:50] for j in range(8)])
    if i % 15 == 0:
        out.append(rlm_query(f"child {i}", context=part))
answer = "\\n".join(out)
print(len(out))
"""
CHILD_CODE = "FINAL(llm_query('summarise: ' + context[:80]))"


class ScriptedModel:
    """Root: the fan-out cell, then FINAL_VAR; child roots: one sub-call; subs: an echo."""

    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s = name, delay_s

    def complete(self, messages: list[dict[str, str]], **limits: Any) -> Completion:
        model = self.name
        time.sleep(self.delay_s)
        if messages[0]["role"] == "system":
            first = len(messages) <= 2
            if model == "root":
                text = (
                    f"```repl\n{ROOT_CODE}\n```" if first else "```repl\nFINAL_VAR('answer')\n```"
                )
            else:
                text = f"```repl\n{CHILD_CODE}\n```"
        else:
            text = "answer to " + messages[-1]["content"][:40]
        return Completion(text, model, 10, 5, 0.0, self.delay_s, "stop")


def main(traces: str, delay: str = "0.01") -> None:
    context = " ".join(f"Sentence {i} of a long document." for i in range(400))
    delay_s = float(delay)
    rlm = RLM(
        "root",
        "sub",
        traces_dir=traces,
        models=lambda name, role: ScriptedModel(name, delay_s),
        max_depth=1,
    )
    result = rlm.run(context, "What does it say?")
    print(result.status, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
