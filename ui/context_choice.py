"""The context a user picked (an example document, uploads or pasted text), with the questions
and known answers an example brings, and the verdict on an answer to one of those questions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlm_core.evaluate.scoring import score


@dataclass
class ContextChoice:
    value: Any
    label: str
    chars: int
    questions: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    scoring: tuple[str, ...] = ()


def verdict(choice: ContextChoice, question: str, answer: str | None) -> str | None:
    """'correct'/'incorrect' (with the score) when the question is one with a known answer."""
    if question.strip() not in choice.questions:
        return None
    index = choice.questions.index(question.strip())
    kind = choice.scoring[index] if index < len(choice.scoring) else "exact"
    points = score(kind, answer, choice.answers[index])
    word = "correct" if points >= 0.999 else "partly correct" if points > 0 else "incorrect"
    return f"{word} (score {points:.2f}; expected: {choice.answers[index][:200]})"
