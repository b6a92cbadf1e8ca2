"""Held-out needle questions over natural prose, for the small-model benchmark: none of them is
the bundled example's question, the prompts' worked examples or their wording.

The haystack is real English already on every machine: the licence texts Debian ships in
/usr/share/common-licenses and the Python language reference bundled with the interpreter
(`pydoc_data.topics`). Each document hides several facts of one kind under different keys, so
an answer must be the asked key's value, not the first number found.
"""

from __future__ import annotations

import functools
import pydoc_data.topics
import random
from dataclasses import dataclass
from pathlib import Path

LICENCES = Path("/usr/share/common-licenses")
KEYS = (
    "amber-falcon",
    "quiet-lantern",
    "copper-meadow",
    "silver-harbor",
    "velvet-comet",
    "granite-willow",
    "misty-orchard",
    "crimson-tundra",
)
# (the fact as written in the document, the questions asked about it): every question words it
# differently from the fact, as users do
FACTS = (
    (
        "One of the special magic numbers for {key} is: {value}.",
        ("What is the special magic number for {key}?", "Which magic number belongs to {key}?"),
    ),
    (
        "The warehouse keeps the {key} crates behind door number {value}.",
        ("Behind which door are the {key} crates kept?", "What door number holds {key} crates?"),
    ),
    (
        "For the record, the {key} account was opened with reference {value}.",
        ("What reference was the {key} account opened with?",),
    ),
)


@dataclass(frozen=True)
class Question:
    context: str
    question: str
    answer: str
    seed: int


@functools.lru_cache(maxsize=1)
def prose() -> str:
    """About 750,000 characters of English prose."""
    parts = [p.read_text(errors="replace") for p in sorted(LICENCES.glob("*")) if p.is_file()]
    return "\n\n".join([*parts, *pydoc_data.topics.topics.values()])


def question(chars: int, seed: int) -> Question:
    """A document of `chars` characters with 4 facts of one kind, and a question about one."""
    rng = random.Random(seed)
    text = prose()
    start = rng.randrange(max(1, len(text) - chars))
    body = (text * (1 + chars // len(text)))[start : start + chars]
    fact, asks = FACTS[rng.randrange(len(FACTS))]
    keys = rng.sample(KEYS, 4)
    values = [str(rng.randint(10_000, 9_999_999)) for _ in keys]
    # sentence ends at spread positions, from last to first so earlier offsets stay valid
    spots = sorted(rng.sample(range(len(body) // 10, len(body) * 9 // 10), len(keys)))
    for spot, key, value in reversed(list(zip(spots, keys, values, strict=True))):
        at = body.find(". ", spot)
        at = spot if at < 0 else at + 2
        body = body[:at] + fact.format(key=key, value=value) + " " + body[at:]
    asked = rng.randrange(len(keys))
    ask = asks[rng.randrange(len(asks))]
    return Question(body, ask.format(key=keys[asked]), values[asked], seed)
