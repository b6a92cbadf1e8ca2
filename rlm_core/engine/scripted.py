"""The scripted `demo/` roots: real REPL code written by a fixed policy instead of a model.

`demo/root` follows probe -> regex filter -> chunk -> `llm_query_batched` -> combine ->
`FINAL_VAR`; `demo/recursive` hands the chunks to child RLMs with `rlm_query_batched`. They
speak the engine's protocol (its prompts), so they live beside it; `models/scripted.py` runs them.
"""

from __future__ import annotations

import functools
import re
import textwrap
from typing import Any

from rlm_core.engine.prompts import LAST_CHANCE
from rlm_core.models.scripted import NOT_FOUND, Policy, keywords

_QUESTION_LINE = re.compile(r"^Question: (.+)$", re.MULTILINE)
RECURSIVE = "demo/recursive"


def root_reply(model: str, messages: list[dict[str, Any]]) -> str:
    """The next turn of the scripted root, chosen by how many turns it has already taken."""
    match = _QUESTION_LINE.search(str(messages[1]["content"])) if len(messages) > 1 else None
    question = match.group(1).strip() if match else ""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if LAST_CHANCE in str(messages[-1]["content"]):
        return "I am out of turns.\nFINAL(I could not finish in the turns I had.)"
    steps = [_probe, _filter, _recurse if model == RECURSIVE else _map, _reduce]
    if turn < len(steps):
        return steps[turn](question)
    return '```repl\nFINAL_VAR("answer")\n```'


def _probe(question: str) -> str:
    return (
        "First I look at what the context is, without reading all of it.\n"
        "```repl\n"
        "parts = context if isinstance(context, list) else "
        "list(context.values()) if isinstance(context, dict) else [context]\n"
        'text = "\\n\\n".join(str(p) for p in parts)\n'
        'print(type(context).__name__, f"{len(text):,} chars")\n'
        "print(text[:500])\n"
        "```"
    )


def _filter(question: str) -> str:
    words = keywords(question) or ["the"]
    return (
        f"Next I search for the question's keywords {words} with a regular expression.\n"
        "```repl\n"
        "import re\n"
        f"question = {question!r}\n"
        f"pattern = re.compile({'|'.join(map(re.escape, words))!r}, re.IGNORECASE)\n"
        "hits = [m.start() for m in pattern.finditer(text)]\n"
        'print(f"{len(hits)} keyword hits; first positions: {hits[:10]}")\n'
        "```"
    )


_CHUNKS = """\
# windows of text around the hits (or even chunks of everything when nothing matched); on a
# repetitive text the windows overlap all the way: a merged chunk stops growing at 4 windows
window = 1500
spans = []
for pos in hits[:2000]:
    start, end = max(0, pos - window // 2), min(len(text), pos + window // 2)
    if spans and start <= spans[-1][1] and spans[-1][1] - spans[-1][0] < 4 * window:
        spans[-1][1] = max(spans[-1][1], end)
    else:
        spans.append([start, end])
if not spans:
    size = max(window, len(text) // 16 + 1)
    spans = [[i, min(len(text), i + size)] for i in range(0, len(text), size)]
spans = spans[:32]
chunks = [text[a:b] for a, b in spans]
print(f"{len(chunks)} chunks of about {sum(b - a for a, b in spans) // max(1, len(spans))} chars")
"""


def _map(question: str) -> str:
    return (
        "Now I cut the text around the hits into chunks and ask the sub model about each "
        "chunk, all at once.\n```repl\n" + _CHUNKS + "prompts = [\n"
        '    f"Question: {question}\\nAnswer only from this excerpt. '
        f'If it does not contain the answer, reply {NOT_FOUND}.\\n\\nExcerpt:\\n{{chunk}}"\n'
        "    for chunk in chunks\n"
        "]\n"
        "answers = llm_query_batched(prompts)\n"
        "for i, a in enumerate(answers):\n"
        "    print(i, a[:200])\n```"
    )


def _recurse(question: str) -> str:
    return (
        "Now I hand each chunk to a child RLM, which gets the chunk as its own context.\n"
        "```repl\n" + _CHUNKS + "chunks = chunks[:4]\n"
        "answers = rlm_query_batched([question] * len(chunks), contexts=chunks)\n"
        "for i, a in enumerate(answers):\n"
        "    print(i, a[:200])\n```"
    )


def _reduce(question: str) -> str:
    return textwrap.dedent(
        f"""\
        Finally I keep the answers that found something and finish with the best one.
        ```repl
        found = [a.strip() for a in answers if a.strip() and {NOT_FOUND!r} not in a.upper()]
        counts = {{a: found.count(a) for a in found}}
        answer = max(counts, key=counts.get) if counts else "The context does not say."
        print(f"{{len(found)}} of {{len(answers)}} chunks had an answer: {{answer!r}}")
        FINAL_VAR("answer")
        ```"""
    )


def root_policy(model: str) -> Policy:
    """The scripted root a `demo/` name stands for (any other demo name runs the map script)."""
    return functools.partial(root_reply, model)
