"""What an evaluation says about RLMs, per question: did the RLM beat the plain model given the
whole context, how much its score swings between seeds, what it cost and how long it took next
to the plain call, and whether it was an RLM at all (runs that never called a sub model or
never started a child RLM are a REPL agent, flagged).

Plain data for the Evaluate page and the CLI; the rows come from `evaluator.load_rows`.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import mean
from typing import Any

from rlm_core.evaluate.evaluator import DID_NOT_FIT, EvalRow


def _ratio(rlm: list[float | None], plain: list[float | None]) -> float | None:
    """Mean of the RLM's values over the plain model's; None when either is unknown."""
    if not rlm or not plain or any(v is None for v in (*rlm, *plain)):
        return None
    base = mean(v for v in plain if v is not None)
    return round(mean(v for v in rlm if v is not None) / base, 2) if base else None


def verdict(rlm_score: float, plain: list[EvalRow]) -> str:
    """win / loss / tie against the plain model; a plain model that could not take the
    document scores 0 (as in the paper), and the verdict says so."""
    called = [r.score for r in plain if r.status != DID_NOT_FIT and r.score is not None]
    if not plain:
        return "no plain run"
    plain_score = mean(called) if called else 0.0
    word = "win" if rlm_score > plain_score else "loss" if rlm_score < plain_score else "tie"
    return f"{word} (plain did not fit)" if not called else word


def _flags(runs: list[EvalRow]) -> str:
    notes = []
    known = [r for r in runs if r.sub_calls is not None]
    if no_sub := sum(1 for r in known if r.sub_calls == 0):
        notes.append(f"no sub-call in {no_sub} of {len(known)}")
    if no_child := sum(1 for r in known if not r.child_runs):
        notes.append(f"never recursed in {no_child} of {len(known)}")
    return "; ".join(notes)


def rlm_vs_plain(rows: Iterable[EvalRow]) -> list[dict[str, Any]]:
    """One line per task, size, model and question: the RLM over its seeds against the plain
    model on the same question."""
    groups: dict[tuple[str, int, str, str], list[EvalRow]] = {}
    for row in rows:
        groups.setdefault((row.task, row.size, row.model, row.question), []).append(row)
    out = []
    for (task, _, model, question), group in groups.items():
        runs = [r for r in group if r.method == "rlm"]
        plain = [r for r in group if r.method == "base"]
        if not runs:
            continue
        scores = [r.score or 0.0 for r in runs]
        called = [r for r in plain if r.status != DID_NOT_FIT]
        out.append(
            {
                "task": task,
                "context chars": group[0].context_chars,
                "model": model,
                "question": question,
                "RLM score": round(mean(scores), 2),
                "right over seeds": f"{sum(s == 1 for s in scores)} of {len(scores)}",
                "spread": f"{min(scores):.2f}–{max(scores):.2f}",
                "plain score": round(mean(r.score or 0.0 for r in called), 2)
                if called
                else DID_NOT_FIT,
                "vs plain": verdict(mean(scores), plain),
                "cost ratio": _ratio([r.cost_usd for r in runs], [r.cost_usd for r in called]),
                "time ratio": _ratio([r.wall_s for r in runs], [r.wall_s for r in called]),
                "flags": _flags(runs),
            }
        )
    return out


def report_lines(rows: Iterable[EvalRow]) -> list[str]:
    """`rlm_vs_plain` as lines of text (the CLI's)."""
    return [
        f"{r['task']:<12} {r['context chars']:>12,} {r['model']:<20} RLM {r['right over seeds']}"
        f" right, {r['vs plain']} against plain; cost {_times(r['cost ratio'])}, time "
        f"{_times(r['time ratio'])}" + (f"; {r['flags']}" if r["flags"] else "")
        for r in rlm_vs_plain(rows)
    ]


def _times(ratio: float | None) -> str:
    return "ratio unknown" if ratio is None else f"x{ratio:g}"
