"""Evaluation: example tasks x sizes x models, each answered by the RLM, by the plain model
with the whole context (when it fits the window) or by another strategy of strategies.py, scored
against the known answer and saved in the `eval_results` table. `python -m rlm_core eval` and the
Evaluate page both use `Evaluator`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_core.config import RLMConfig
from rlm_core.context import labelled_text, size_of
from rlm_core.engine.budget import check_cost_limit
from rlm_core.engine.rlm import RLM
from rlm_core.evaluate.examples import EXAMPLES, Example
from rlm_core.evaluate.scoring import score
from rlm_core.models import local as local_model
from rlm_core.models.resolve import check_model
from rlm_core.otel_map import OtlpTarget
from rlm_core.store.trace_store import TraceStore
from rlm_core.strategies.registry import LABELS, STRATEGIES, USES_SUB_MODEL, run_strategy
from rlm_core.strategies.single import does_not_fit
from rlm_core.types import new_id

DEFAULT_METHODS = ("rlm", "base")
# the other strategies make the grid of the paper's Table 1 (strategy x task, score and cost)
METHODS = (*DEFAULT_METHODS, *(s for s in STRATEGIES if s != "rlm"))
METHOD_LABELS = {**LABELS, "rlm": "RLM", "base": "plain model"}
DID_NOT_FIT = "did not fit"
MIN_SIZE, MAX_SIZE = 1_000, 100_000_000
Progress = Callable[[int, int, str], None]


def default_sub(root: str) -> str:
    return "demo/sub" if root.startswith("demo/") else root


@dataclass(frozen=True)
class EvalPlan:
    tasks: tuple[str, ...]
    sizes: tuple[int, ...]
    models: tuple[tuple[str, str], ...]
    """(root model, sub model) pairs; the plain baseline uses the root model."""
    config: RLMConfig = field(default_factory=RLMConfig)
    """Limits, API base and key shared by every run."""
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int | None, ...] = (None,)
    """Sampling seeds: each RLM run is repeated once per seed (the plain model runs once)."""

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in EXAMPLES]
        if unknown or not self.tasks:
            raise ValueError(f"unknown or no tasks {unknown}; known: {', '.join(EXAMPLES)}")
        if not self.sizes or any(not MIN_SIZE <= s <= MAX_SIZE for s in self.sizes):
            raise ValueError(f"sizes must be between {MIN_SIZE:,} and {MAX_SIZE:,} characters")
        if not self.models or any(not root or not sub for root, sub in self.models):
            raise ValueError("give at least one model")
        if not self.methods or set(self.methods) - set(METHODS):
            raise ValueError(f"methods must be among {', '.join(METHODS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("give at least one seed, each once")

    def runs_of(self, method: str) -> tuple[int | None, ...]:
        """The seeds a method runs with: every seed, or the first for the plain model (one
        whole-context call is the reference; repeating it would cost the most of all)."""
        return self.seeds[:1] if method == "base" else self.seeds

    @property
    def model_names(self) -> list[str]:
        """Every model the plan may call: roots, sub models and the child root model."""
        child = [self.config.child_root_model] if self.config.child_root_model else []
        return list(dict.fromkeys([*(m for pair in self.models for m in pair), *child]))

    @property
    def total(self) -> int:
        questions = sum(len(EXAMPLES[t].questions) for t in self.tasks)
        runs = sum(len(self.runs_of(m)) for m in self.methods)
        return questions * len(self.sizes) * len(self.models) * runs


@dataclass
class EvalRow:
    eval_id: str
    task: str
    family: str
    size: int
    context_chars: int
    question: str
    expected: str
    scorer: str
    method: str
    model: str
    sub_model: str | None
    status: str
    answer: str | None = None
    score: float | None = None
    """None when the plain model was not called because the context did not fit."""
    cost_usd: float | None = None
    wall_s: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    run_id: str | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    row_id: str = field(default_factory=new_id)
    seed: int | None = None
    sub_calls: int | None = None
    """Sub-calls the run made (None: unknown, e.g. no store)."""
    child_runs: int | None = None
    """Child RLMs it started (`rlm_query`)."""


COLUMNS = [f.name for f in dataclasses.fields(EvalRow)]


def label(row: EvalRow) -> str:
    return f"{row.task} · {row.size:,} chars · {row.model} · {METHOD_LABELS[row.method]}"


class Evaluator:
    """Runs a plan in order, saving each row as it is scored; safe to run in a worker thread.
    `traces_dir`, `journal_only` and `otlp` go to every run (an evaluation worker on Ray keeps
    its journals only; the store's owner imports them)."""

    def __init__(
        self,
        plan: EvalPlan,
        store: TraceStore | None,
        *,
        eval_id: str | None = None,
        cancel: threading.Event | None = None,
        on_progress: Progress | None = None,
        on_row: Callable[[EvalRow], None] | None = None,
        otlp: OtlpTarget | None = None,
        traces_dir: Path | None = None,
        journal_only: bool = False,
    ) -> None:
        self.plan = plan
        self.store = store
        self.eval_id = eval_id or new_id()
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress or (lambda done, total, label: None)
        self.on_row = on_row or (lambda row: None)
        self.otlp, self.traces_dir, self.journal_only = otlp, traces_dir, journal_only
        self.count = 0

    def run(self) -> list[EvalRow]:
        rows: list[EvalRow] = []
        for row, context in self.rows():
            if self.cancel.is_set():
                return rows
            self.on_progress(self.count, self.plan.total, label(row))
            self.answer(row, context)
            self._save(row)
            rows.append(row)
        self.on_progress(self.count, self.plan.total, "done")
        return rows

    def rows(self) -> Iterator[tuple[EvalRow, Any]]:
        """Every row of the plan, not yet answered, with its context (built once per task and
        size, for every model and method), in the plan's order."""
        plan = self.plan
        for name in plan.tasks:
            example = EXAMPLES[name]
            for size in plan.sizes:
                if self.cancel.is_set():
                    return
                self.on_progress(self.count, plan.total, f"building {name} at {size:,} chars")
                context = example.build(size)
                for row in self._task(name, example, size, context):
                    yield row, context

    def _task(self, name: str, example: Example, size: int, context: Any) -> Iterator[EvalRow]:
        chars, expected = size_of(context), example.answers(context)
        for root, sub in self.plan.models:
            for index, question in enumerate(example.questions):
                for method, seed in (
                    (m, seed) for m in self.plan.methods for seed in self.plan.runs_of(m)
                ):
                    yield EvalRow(
                        seed=seed,
                        eval_id=self.eval_id,
                        task=name,
                        family=example.family,
                        size=size,
                        context_chars=chars,
                        question=question,
                        expected=expected[index],
                        scorer=example.scorer(index),
                        method=method,
                        model=root,
                        sub_model=sub if method in USES_SUB_MODEL else None,
                        status="running",
                    )

    def answer(self, row: EvalRow, context: Any) -> None:
        """Run the row's method and score its answer (the row is not saved)."""
        if row.method == "base":
            self._base(row, context)
        else:
            self._rlm(row, context)
        if row.status != DID_NOT_FIT:
            row.score = score(row.scorer, row.answer, row.expected)

    def _rlm(self, row: EvalRow, context: Any, strategy: str | None = None) -> None:
        """The RLM, or any strategy of strategies.py: each leaves a run tree behind."""
        strategy = strategy or row.method
        config = self.plan.config.with_(
            root_model=row.model,
            sub_model=row.sub_model or row.model,
            seed=self.plan.config.seed if row.seed is None else row.seed,
        )
        meta = {"eval_id": self.eval_id, "task": row.task, "size": row.size}
        try:
            if strategy == "rlm":
                rlm = RLM(
                    config=config,
                    store=self.store,
                    traces_dir=self.traces_dir,
                    journal_only=self.journal_only,
                    otlp=self.otlp,
                )
                result = rlm.run(context, row.question, cancel=self.cancel, run_meta=meta)
            else:
                result = run_strategy(
                    strategy,
                    context,
                    row.question,
                    config,
                    store=self.store,
                    traces_dir=self.traces_dir,
                    journal_only=self.journal_only,
                    otlp=self.otlp,
                    cancel=self.cancel,
                    run_meta=meta,
                )
        except Exception as exc:  # the engine failing must not end the whole evaluation
            row.status, row.error = "error", f"{type(exc).__name__}: {exc}"
            return
        row.status, row.answer, row.run_id = result.status, result.answer, result.run_id
        row.cost_usd, row.wall_s, row.error = result.cost_usd, result.wall_s, result.error
        row.tokens_in, row.tokens_out = result.tokens_in, result.tokens_out

    def _base(self, row: EvalRow, context: Any) -> None:
        """The plain model with the whole context, as in the paper: a row that cannot fit its
        window is "did not fit" (nothing is sent); one that fits runs the `plain` strategy."""
        why = does_not_fit(row.model, labelled_text(context), row.question)
        if why is not None:
            row.status, row.error = DID_NOT_FIT, why
            return
        self._rlm(row, context, "plain")
        if row.status == "error" and "too long for the context window" in (row.error or ""):
            row.status = DID_NOT_FIT

    def _save(self, row: EvalRow) -> None:
        if self.store is not None:
            if row.run_id is not None:
                kinds = [n.kind for n in self.store.nodes(row.run_id)]
                row.sub_calls = sum(k in ("llm_query", "rlm_query") for k in kinds)
                row.child_runs = kinds.count("run") - 1
            save_row(self.store, row)
        self.count += 1
        self.on_row(row)


# ---- storage and reports -----------------------------------------------------------------


def save_row(store: TraceStore, row: EvalRow) -> None:
    values = [getattr(row, c) for c in COLUMNS]
    store.cursor().execute(
        f"INSERT OR REPLACE INTO eval_results ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})",
        values,
    )


def load_rows(store: TraceStore, eval_id: str | None = None) -> list[EvalRow]:
    where, params = ("WHERE eval_id = ?", [eval_id]) if eval_id else ("", [])
    cur = store.cursor().execute(
        f"SELECT {', '.join(COLUMNS)} FROM eval_results {where} ORDER BY row_id", params
    )
    return [EvalRow(**dict(zip(COLUMNS, r, strict=True))) for r in cur.fetchall()]


def list_evals(store: TraceStore) -> list[dict[str, Any]]:
    """One summary per evaluation, newest first."""
    cur = store.cursor().execute(
        "SELECT eval_id, min(created_at), count(*), string_agg(DISTINCT model, ', '), "
        "string_agg(DISTINCT task, ', ') FROM eval_results GROUP BY eval_id "
        "ORDER BY min(created_at) DESC"
    )
    keys = ("eval_id", "created_at", "rows", "models", "tasks")
    return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


def summary(rows: Iterable[EvalRow]) -> list[dict[str, Any]]:
    """Per task, size, model and method: mean score, its spread over seeds (the lowest and the
    highest seed's mean; None with one seed), total cost (None if any is unknown), time."""
    groups: dict[tuple[str, int, str, str], list[EvalRow]] = {}
    for row in rows:
        groups.setdefault((row.task, row.size, row.model, row.method), []).append(row)
    out = []
    for (task, size, model, method), group in groups.items():
        called = [r for r in group if r.status != DID_NOT_FIT]
        scores = [r.score for r in called if r.score is not None]
        costs = [r.cost_usd for r in called]
        per_seed: dict[int | None, list[float]] = {}
        for r in called:
            if r.score is not None:
                per_seed.setdefault(r.seed, []).append(r.score)
        means = [sum(s) / len(s) for s in per_seed.values()]
        out.append(
            {
                "task": task,
                "size": size,
                "context_chars": group[0].context_chars,
                "model": model,
                "method": METHOD_LABELS.get(method, method),
                "questions": len(group),
                "score": sum(scores) / len(scores) if scores else None,
                "score_spread": (min(means), max(means)) if len(means) > 1 else None,
                "did_not_fit": len(group) - len(called),
                "errors": sum(1 for r in called if r.status == "error"),
                "cost_usd": None
                if not costs or any(c is None for c in costs)
                else sum(c for c in costs if c is not None),
                "wall_s": sum(r.wall_s or 0.0 for r in called) / len(called) if called else None,
            }
        )
    return sorted(out, key=lambda r: (r["task"], r["size"], r["model"], r["method"]))


def rows_csv(rows: Iterable[EvalRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in COLUMNS])
    return buffer.getvalue()


def preflight(plan: EvalPlan) -> None:
    """Raise ModelError before anything runs for a model that cannot be routed or loaded, or
    whose price a cost limit would need and litellm does not know."""
    config, models = plan.config, plan.model_names
    check_cost_limit(config, models)
    for model in models:
        check_model(model, api_base=config.api_base, api_key=config.api_key)
        if local_model.is_local(model):
            local_model.load(model)
