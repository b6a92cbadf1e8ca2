"""Scoring an answer against the ground truth, one rule per task type (as in the RLM paper):
exact match, numeric partial credit 0.75^|error|, and F1 over sets of pairs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

SHORT_ANSWER_WORDS = 30
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_PAIR = re.compile(
    r"(?:user\s*)?(\d+)\s*(?:,|;|&|\band\b|-|–|/|\|)\s*(?:user\s*)?(\d+)", re.IGNORECASE
)


def normalize(text: str) -> str:
    """Lower case, no markdown quoting, single spaces, no trailing full stop."""
    text = text.strip().strip("`*_\"'").lower()
    text = " ".join(text.replace("`", "").split())
    return text.rstrip(".!").strip()


def exact(answer: str, expected: str) -> float:
    """1 when the normalized answer equals the expected one, or when a short answer (a sentence,
    not a list of guesses) contains it as a whole phrase; else 0."""
    got, want = normalize(answer), normalize(expected)
    if got == want:
        return 1.0
    if not want or len(got.split()) > SHORT_ANSWER_WORDS:
        return 0.0
    # a path or word inside a longer one ("lib/fnmatch.py", "returnsx") does not count
    phrase = rf"(?<![\w/.-]){re.escape(want)}(?![\w/-])"
    return 1.0 if re.search(phrase, got) else 0.0


def first_number(text: str) -> float | None:
    found = _NUMBER.search(text)
    if found is None:
        return None
    try:
        return float(found.group().replace(",", ""))
    except ValueError:
        return None


def numeric(answer: str, expected: str) -> float:
    """0.75 ** |answer - expected| using the first number in the answer; 0 without a number."""
    want = first_number(expected)
    got = first_number(answer)
    if want is None or got is None:
        return 0.0
    return float(0.75 ** abs(got - want))


def parse_pairs(text: str) -> set[tuple[int, int]]:
    """Pairs like `12, 345`, `(12, 345)`, `user 12 & user 345`, in either order."""
    pairs = set()
    for line in text.splitlines():
        for a, b in _PAIR.findall(line):
            x, y = int(a), int(b)
            if x != y:
                pairs.add((min(x, y), max(x, y)))
    return pairs


def pairs_f1(answer: str, expected: str) -> float:
    """F1 of the answer's pairs against the expected pairs (1 when both are empty)."""
    got, want = parse_pairs(answer), parse_pairs(expected)
    if not want:
        return 1.0 if not got else 0.0
    hits = len(got & want)
    if not hits:
        return 0.0
    precision, recall = hits / len(got), hits / len(want)
    return 2 * precision * recall / (precision + recall)


SCORERS: dict[str, Callable[[str, str], float]] = {
    "exact": exact,
    "numeric": numeric,
    "pairs": pairs_f1,
}


def score(kind: str, answer: str | None, expected: str) -> float:
    """The score in [0, 1] of `answer`; no answer scores 0."""
    if kind not in SCORERS:
        raise ValueError(f"unknown scoring rule {kind!r}; known: {', '.join(SCORERS)}")
    if answer is None or not answer.strip():
        return 0.0
    return SCORERS[kind](answer, expected)


def score_for(
    question: str,
    questions: Sequence[str],
    answers: Sequence[str],
    scoring: Sequence[str],
    answer: str | None,
) -> float | None:
    """The score of `answer` when `question` is one of `questions`, whose `answers` and
    `scoring` rules are known (an example's); None for any other question."""
    if question.strip() not in questions:
        return None
    i = list(questions).index(question.strip())
    return score(scoring[i] if i < len(scoring) else "exact", answer, answers[i])
