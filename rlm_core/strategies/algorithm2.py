"""The Algorithm 2 scaffold the paper contrasts with RLMs: a CodeAct-style agent with the document
in its window, Python execution and a sub-LLM as separate actions, a Finish action whose text is
the answer, and compaction of the history when the window fills.

Built honestly, flaws included: the document sits in the root's first message, code cannot reach
it (only what the model copies into the code), and each sub-LLM call is one verbalized action.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from rlm_core.engine.provenance import spans_in
from rlm_core.errors import LimitExceeded
from rlm_core.models.facts import count_tokens, window_tokens
from rlm_core.repl.sandbox import Repl, SubCallError
from rlm_core.strategies.base import OUTPUT_RESERVE_TOKENS, Baseline, fit, with_marker

ACTION_MARK = "Reply with exactly one action"
DOCUMENT_HEAD = "Document:\n"
OBSERVATION = "Observation ({tool}):\n"
COMPACTED = "Earlier turns, including the document, were compacted into this summary"
SYSTEM_PROMPT = """\
You are an agent that answers a question about the document given in the first user message.
You act in turns. {mark}, as a JSON object in a fenced block, for example:
```action
{{"tool": "python", "code": "print(sum(range(10)))"}}
```
Tools:
- python: {{"tool": "python", "code": "..."}} runs the code in a Python sandbox and shows you \
its output. The document is NOT available in the sandbox: to compute over part of it, write that \
part into your code.
- llm: {{"tool": "llm", "prompt": "..."}} asks a helper language model one question; it sees \
only your prompt.
- finish: {{"tool": "finish", "answer": "..."}} ends the task; the answer is this text.
When the conversation grows too long for your window, older turns are replaced by a summary."""
COMPACT_PROMPT = """\
Question: {question}
The conversation below no longer fits the agent's window. Summarize it so the agent can go on \
without it: keep every fact, name and number that could help answer the question, and what has \
been tried.

Conversation:
{transcript}"""
_ACTION = re.compile(r"```(?:action|json)[^\n]*\n(.*?)```", re.DOTALL)


def parse_action(text: str) -> dict[str, Any] | str:
    """The action of a reply, or why there is none (told to the model)."""
    match = _ACTION.search(text)
    raw = match.group(1) if match else text.strip() if text.strip().startswith("{") else None
    if raw is None:
        return "there was no ```action block"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return f"the action is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return "the action must be a JSON object"
    field = {"python": "code", "llm": "prompt", "finish": "answer"}.get(str(data.get("tool")))
    if field is None:
        return 'the tool must be "python", "llm" or "finish"'
    if not isinstance(data.get(field), str | int | float):
        return f'the {data["tool"]} action needs a "{field}" string'
    return {"tool": data["tool"], "value": str(data[field])}


def _no_sub_calls(fn: str, args: dict[str, Any]) -> Any:
    raise SubCallError(f"{fn} is not available here: ask the helper model with the llm action")


class Algorithm2(Baseline):
    """The agent loop with the document in the window (see the module docstring)."""

    strategy = "algorithm2"
    defaults: ClassVar[dict[str, Any]] = {
        "window_tokens": None,
        "document_share": 0.5,
        "compact_at_tokens": None,
    }

    def answer(self) -> str | None:
        model = self.root_model
        self.window, source = window_tokens(model, self.options["window_tokens"])
        system = SYSTEM_PROMPT.format(mark=ACTION_MARK)
        head = f"Question: {self.question}\n\n{DOCUMENT_HEAD}"
        tail = f"\n\nQuestion: {self.question}\n{ACTION_MARK}."
        share = min(0.9, max(0.05, float(self.options["document_share"])))
        budget = int(self.window * share) - count_tokens(model, system + head + tail)
        kept, dropped = self.fit_document(model, budget)
        self.document_spans = self.spans(0, len(kept))
        self.compact_at = int(self.options["compact_at_tokens"] or self.window * 0.8)
        self.rec.node.meta.update(
            window_tokens=self.window,
            window_source=source,
            compact_at_tokens=self.compact_at,
            compactions=0,
        )
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": head + with_marker(kept, dropped) + tail},
        ]
        sandbox = self.run.repl(self.run.context_ref(""), _no_sub_calls)
        self.rec.node.meta["isolation"] = sandbox.isolation
        try:
            return self._act(sandbox, messages, dropped)
        finally:
            sandbox.close()

    def _act(self, sandbox: Repl, messages: list[dict[str, str]], dropped: int) -> str:
        cfg, model = self.config, self.root_model
        sent, compactions, last_help = 0, 0, ""
        for it in range(1, cfg.max_iterations + 1):
            self.rec.iterations = it
            if count_tokens(model, _joined(messages)) > self.compact_at:
                compactions += 1
                messages = self._compact(messages, it, compactions)
                sent = 0
            # until the first compaction every call re-reads the document in its window
            spans = self.document_spans if compactions == 0 else []
            reply, lm = self.ask(
                "lm",
                messages,
                sent=sent,
                spans=spans,
                meta={"iteration": it, "compactions": compactions},
            )
            sent = len(messages)
            action = parse_action(reply)
            if isinstance(action, str):
                observed = f"Your reply had no usable action: {action}. {ACTION_MARK}."
            elif action["tool"] == "finish":
                self._note(dropped, compactions)
                return self.final(action["value"], lm)
            elif action["tool"] == "python":
                _, node = self.rec.cell(sandbox, action["value"], it, 1)
                observed = OBSERVATION.format(tool="python") + (node.model_view or "(no output)")
            else:
                prompt = action["value"]
                last_help, _ = self.ask(
                    "llm_query",
                    [{"role": "user", "content": prompt}],
                    spans=spans_in(prompt, self.run.index),
                    meta={"iteration": it},
                )
                observed = OBSERVATION.format(tool="llm") + last_help
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"{observed}\n\nQuestion: {self.question}"},
            ]
            self.rec.progress()
        self._note(dropped, compactions)
        raise LimitExceeded(
            "max_iterations",
            f"{cfg.max_iterations} iterations used",
            last_help or self.rec.last_response.strip() or None,
        )

    def _compact(self, messages: list[dict[str, str]], it: int, n: int) -> list[dict[str, str]]:
        """Replace everything after the system prompt by the root model's summary of it."""
        model = self.root_model
        self.rec.node.meta["compactions"] = n
        header = COMPACT_PROMPT.format(question=self.question, transcript="")
        budget = self.window - OUTPUT_RESERVE_TOKENS - count_tokens(model, header) - 40
        transcript = _joined(messages[1:])
        kept = fit(model, transcript, budget)
        if len(kept) < len(transcript):
            kept += f"\n[... {len(transcript) - len(kept):,} more characters cut ...]"
        meta = {
            "iteration": it,
            "compaction": n,
            "compacted_messages": len(messages) - 1,
            "compacted_tokens": count_tokens(model, transcript),
        }
        prompt = COMPACT_PROMPT.format(question=self.question, transcript=kept)
        summary, _ = self.ask(
            "lm",
            [{"role": "user", "content": prompt}],
            spans=spans_in(kept, self.run.index),
            meta=meta,
        )
        return [
            messages[0],
            {
                "role": "user",
                "content": f"Question: {self.question}\n\n{COMPACTED} to fit the "
                f"window:\n{summary}\n\n{ACTION_MARK}.",
            },
        ]

    def _note(self, dropped: int, compactions: int) -> None:
        parts = [f"The document was in the root's window ({self.window:,} tokens)"]
        if dropped:
            parts.append(f"cut by {dropped:,} of {len(self.text):,} characters to fit")
        if compactions:
            parts.append(f"and the history was compacted {compactions} time(s)")
        self.note(", ".join(parts) + ".")


def _joined(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
