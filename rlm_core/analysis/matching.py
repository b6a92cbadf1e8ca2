"""How alike two steps of two runs are, and which sub-calls of two batches are the same call
(best-first by the document ranges they saw, else by their prompts). Pure functions."""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable, Iterator, Sequence

from rlm_core.types import Node

SIM_TOKENS = 150
"""Similarity looks at this many leading lines or words: enough to tell cells apart, and
difflib is quadratic (150 words: under a millisecond a pair; 2,000 chars: over 100 ms)."""
MAX_PROMPT_PAIRS = 2500
"""Bigger batches without spans pair prompts by equality only, to keep a page under a second."""
SUB_MIN = 0.3
"""Sub-calls whose spans / prompts overlap less than this are not the same call."""


def similarity(a: str | None, b: str | None) -> float:
    """0..1; by lines for multi-line texts (code, responses), by words for the others."""
    a, b = a or "", b or ""
    if a == b:
        return 1.0
    la, lb = a.splitlines(), b.splitlines()
    if len(la) < 3 or len(lb) < 3:
        la, lb = a.split(), b.split()
    sm = difflib.SequenceMatcher(None, la[:SIM_TOKENS], lb[:SIM_TOKENS], autojunk=False)
    return sm.ratio()


def _merged(spans: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in spans if int(e) > int(s)):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def span_overlap(a: Iterable[Sequence[int]], b: Iterable[Sequence[int]]) -> float:
    """Jaccard index of the characters two span lists cover (0 when either is empty)."""
    ma, mb = _merged(a), _merged(b)
    total_a, total_b = sum(e - s for s, e in ma), sum(e - s for s, e in mb)
    inter, i, j = 0, 0, 0
    while i < len(ma) and j < len(mb):
        lo, hi = max(ma[i][0], mb[j][0]), min(ma[i][1], mb[j][1])
        inter += max(0, hi - lo)
        if ma[i][1] < mb[j][1]:
            i += 1
        else:
            j += 1
    union = total_a + total_b - inter
    return inter / union if union else 0.0


def _sub_score(a: Node, b: Node, cheap: bool) -> float:
    if a.context_spans and b.context_spans:
        return span_overlap(a.context_spans, b.context_spans)
    if cheap:
        return float(a.input == b.input)
    return similarity(a.input, b.input)


def _all_pairs(left: list[Node], right: list[Node]) -> Iterator[tuple[int, int]]:
    return ((i, j) for i in range(len(left)) for j in range(len(right)))


def _candidates(left: list[Node], right: list[Node]) -> Iterator[tuple[int, int]]:
    """The pairs of two big batches that can score anything: calls whose spans overlap (found
    by sweeping sorted ranges), and calls with equal prompts when one of them saw no span. Every
    other pair scores 0, below SUB_MIN, so skipping it changes nothing: 2,000 x 2,000 calls cost
    their overlaps instead of 4 million scores."""
    ranges = sorted(
        (min(s[0] for s in b.context_spans), max(s[1] for s in b.context_spans), j)
        for j, b in enumerate(right)
        if b.context_spans
    )
    starts = [r[0] for r in ranges]
    longest = max((hi - lo for lo, hi, _ in ranges), default=0)
    prompts: dict[str | None, list[int]] = {}
    for j, b in enumerate(right):
        prompts.setdefault(b.input, []).append(j)
    for i, a in enumerate(left):
        if a.context_spans:
            lo, hi = min(s[0] for s in a.context_spans), max(s[1] for s in a.context_spans)
            # a range that overlaps [lo, hi) starts after lo - longest and before hi
            first = bisect.bisect_right(starts, lo - longest)
            for _, r_hi, j in ranges[first : bisect.bisect_left(starts, hi)]:
                if r_hi > lo:
                    yield i, j
        for j in prompts.get(a.input, []):
            if not (a.context_spans and right[j].context_spans):
                yield i, j


def match_subs(left: list[Node], right: list[Node]) -> list[tuple[Node | None, Node | None]]:
    """Best-first by span overlap (prompt similarity when a call saw no span), so a batch run in
    another order still pairs the calls that read the same part of the document."""
    cheap = len(left) * len(right) > MAX_PROMPT_PAIRS
    pairs = _candidates(left, right) if cheap else _all_pairs(left, right)
    scored = sorted(
        ((_sub_score(left[i], right[j], cheap), i, j) for i, j in pairs),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    partner: dict[int, int] = {}
    taken: set[int] = set()
    for score, i, j in scored:
        if score >= SUB_MIN and i not in partner and j not in taken:
            partner[i] = j
            taken.add(j)
    out: list[tuple[Node | None, Node | None]] = [
        (a, right[partner[i]] if i in partner else None) for i, a in enumerate(left)
    ]
    return out + [(None, b) for j, b in enumerate(right) if j not in taken]
