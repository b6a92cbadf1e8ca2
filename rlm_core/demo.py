"""Offline scripted models, registered with litellm as the `demo/` provider.

They are not language models: `demo/root` follows a fixed probe -> filter -> chunk -> map ->
reduce script written as real REPL code, `demo/recursive` hands chunks to child RLMs, and
`demo/sub` answers extractively from the text it is given. They exist so a fresh offline
install can run, trace and teach a complete RLM, and so tests are deterministic.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from rlm_core.prompts import LAST_CHANCE

DEMO_MODELS = {
    "demo/root": "scripted root: probe, regex filter, chunk, llm_query_batched, combine",
    "demo/recursive": "scripted root that hands chunks to child RLMs with rlm_query_batched",
    "demo/sub": "scripted sub model: answers with the sentence that best matches the question",
    "demo/codeact": "scripted Algorithm 2 agent: copies a passage from its window into actions",
}
NOT_FOUND = "NOT FOUND"
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


def keywords(question: str) -> list[str]:
    words = re.findall(r"[A-Za-z0-9_'-]+", question)
    return [
        w for w in dict.fromkeys(w.lower() for w in words) if w not in _STOPWORDS and len(w) > 2
    ]


# ---- root policies -------------------------------------------------------------------------


def root_reply(model: str, messages: list[dict[str, Any]]) -> str:
    """The next turn of the scripted root, chosen by how many turns it has already taken."""
    match = _QUESTION_LINE.search(str(messages[1]["content"])) if len(messages) > 1 else None
    question = match.group(1).strip() if match else ""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if LAST_CHANCE in str(messages[-1]["content"]):
        return "I am out of turns.\nFINAL(I could not finish in the turns I had.)"
    steps = [_probe, _filter, _recurse if model == "recursive" else _map, _reduce]
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
# windows of text around the hits (or even chunks of everything when nothing matched)
window = 1500
spans = []
for pos in hits[:2000]:
    start, end = max(0, pos - window // 2), min(len(text), pos + window // 2)
    if spans and start <= spans[-1][1]:
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


# ---- sub policy ----------------------------------------------------------------------------


def sub_reply(prompt: str) -> str:
    """The sentence of the prompt's text sharing the most keywords with its question."""
    match = _QUESTION_LINE.search(prompt)
    question = match.group(1) if match else prompt.split("\n", 1)[0]
    body = prompt[match.end() :] if match else prompt
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


def reply(model: str, messages: list[dict[str, Any]]) -> str:
    """Any demo model acts as a root when given the RLM system prompt, else as a sub model."""
    from rlm_core import demo_baselines  # the strategies' other protocols (strategies.py)

    if demo_baselines.handles(messages):
        return demo_baselines.reply(model, messages)
    is_root = (
        bool(messages) and messages[0]["role"] == "system" and "REPL" in str(messages[0]["content"])
    )
    if is_root:
        return root_reply(model, messages)
    return sub_reply(str(messages[-1]["content"]) if messages else "")


# ---- litellm registration ------------------------------------------------------------------


def register(litellm: Any) -> None:
    """Make `demo/<name>` resolve to the scripted models, priced at zero (they are free)."""
    from litellm import CustomLLM, ModelResponse

    class DemoLLM(CustomLLM):
        def _respond(self, model: str, messages: list[dict[str, Any]]) -> Any:
            text = reply(model, messages)
            prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
            usage = {
                "prompt_tokens": prompt_chars // 4 + 1,
                "completion_tokens": len(text) // 4 + 1,
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            return ModelResponse(
                model=f"demo/{model}",
                choices=[
                    {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                usage=usage,
            )

        def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
            return self._respond(model, messages)

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Any:
            return self._respond(model, messages)

    providers = [p for p in litellm.custom_provider_map if p.get("provider") != "demo"]
    litellm.custom_provider_map = [*providers, {"provider": "demo", "custom_handler": DemoLLM()}]
    litellm.register_model(
        {
            name: {
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "litellm_provider": "demo",
                "mode": "chat",
                "max_input_tokens": 32_000,
            }
            for name in DEMO_MODELS
        }
    )
