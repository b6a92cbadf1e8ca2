"""What a `demo/` root does in the strategies whose root speaks another protocol: the Algorithm 2
agent (one action block per turn) and the RLM without sub-calls (code alone). Offline and
deterministic, like the scripted RLM roots (engine/scripted.py); the registry hands them out."""

from __future__ import annotations

import json
import re
from typing import Any

from rlm_core.engine.prompts import LAST_CHANCE
from rlm_core.engine.scripted import root_reply
from rlm_core.models.scripted import NOT_FOUND, keywords, sub_policy
from rlm_core.strategies.algorithm2 import ACTION_MARK, COMPACTED, DOCUMENT_HEAD, OBSERVATION

EXCERPT_CHARS = 1500
_QUESTION = re.compile(r"^Question: (.+)$", re.MULTILINE)


def _question(messages: list[dict[str, Any]]) -> str:
    for message in messages[1:]:
        found = _QUESTION.search(str(message["content"]))
        if found:
            return found.group(1).strip()
    return ""


# ---- the Algorithm 2 agent: python, then llm, then finish ---------------------------------


def _action(text: str, action: dict[str, str]) -> str:
    return f"{text}\n```action\n{json.dumps(action, ensure_ascii=False)}\n```"


def _in_window(messages: list[dict[str, Any]]) -> str:
    """The document as far as it is in the window, or the compaction summary that replaced it."""
    for message in messages[1:]:
        content = str(message["content"])
        if DOCUMENT_HEAD in content:
            return content.split(DOCUMENT_HEAD, 1)[1].rsplit("\n\nQuestion: ", 1)[0]
    return next((str(m["content"]) for m in messages if COMPACTED in str(m["content"])), "")


def best_excerpt(text: str, words: list[str]) -> str:
    """The window of text with the most distinct keywords (then the most hits): what an agent
    reading its own window would copy out."""
    if not words or len(text) <= EXCERPT_CHARS:
        return text[:EXCERPT_CHARS]
    lower, best, best_key = text.lower(), 0, (0, 0)
    for start in range(0, len(text), EXCERPT_CHARS // 2):
        piece = lower[start : start + EXCERPT_CHARS]
        counts = [piece.count(w) for w in words]
        key = (sum(1 for c in counts if c), sum(counts))
        if key > best_key:
            best, best_key = start, key
    return text[best : best + EXCERPT_CHARS]


def agent_policy(messages: list[dict[str, Any]]) -> str:
    """Copy the best passage into code, ask the helper about it, finish with its answer. Asked to
    summarize the history (compaction: no agent system prompt), it answers like the sub model."""
    if not messages or ACTION_MARK not in str(messages[0]["content"]):
        return sub_policy(messages)
    question, last = _question(messages), str(messages[-1]["content"])
    llm_seen = OBSERVATION.format(tool="llm")
    if last.startswith(llm_seen):
        said = last[len(llm_seen) :].rsplit("\n\nQuestion: ", 1)[0].strip()
        answer = said if said and NOT_FOUND not in said.upper() else "My window does not say."
        return _action("The helper answered; I finish.", {"tool": "finish", "answer": answer})
    words = keywords(question)
    excerpt = best_excerpt(_in_window(messages), words)
    if last.startswith(OBSERVATION.format(tool="python")):
        prompt = (
            f"Question: {question}\nAnswer only from this excerpt. If it does not contain the "
            f"answer, reply {NOT_FOUND}.\n\nExcerpt:\n{excerpt}"
        )
        return _action(
            "I ask the helper model about that passage.", {"tool": "llm", "prompt": prompt}
        )
    pattern = "|".join(map(re.escape, words)) or "."
    code = (
        f"import re\nexcerpt = {excerpt!r}\nhits = re.findall({pattern!r}, excerpt, re.I)\n"
        "print(len(excerpt), 'characters copied from my window;', len(hits), 'keyword hits')"
    )
    return _action(
        "The sandbox cannot see the document, so I copy the most relevant passage into code.",
        {"tool": "python", "code": code},
    )


# ---- the RLM without sub-calls: probe, filter, then answer with code alone ------------------

_CODE_ONLY = """\
Sub-calls are disabled, so I answer with code alone.
```repl
words = set({words!r})
if question.lower().startswith("how many"):
    # counting needs every record: count the lines holding the rarest keyword that occurs
    lines = text.splitlines()
    counts = {{w: sum(1 for ln in lines if w in ln.lower()) for w in words}}
    present = {{w: n for w, n in counts.items() if n}}
    answer = str(min(present.values())) if present else "0"
else:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\\s+|\\n+", text) if s.strip()]
    def overlap(s):
        return len(words & set(re.findall(r"[a-z0-9_'-]+", s.lower())))
    best = max(sentences, key=overlap, default="")
    answer = best if best and overlap(best) >= {needed} else "The context does not say."
print(repr(answer[:300]))
FINAL_VAR("answer")
```"""


def code_only_policy(messages: list[dict[str, Any]]) -> str:
    """The demo root's probe and keyword filter, then an answer computed by code alone."""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if LAST_CHANCE in str(messages[-1]["content"]):
        return "I am out of turns.\nFINAL(I could not finish in the turns I had.)"
    if turn < 2:
        return root_reply("demo/root", messages)  # the usual probe and keyword filter
    if turn == 2:
        words = keywords(_question(messages))
        return _CODE_ONLY.format(words=words, needed=1 if len(words) <= 2 else 2)
    return '```repl\nFINAL_VAR("answer")\n```'
