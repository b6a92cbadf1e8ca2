"""`python -m rlm_core eval`: score the RLM against the plain model (and other strategies) on
generated tasks with known answers, over sizes, models and seeds."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rlm_core.flags import add_settings, config_from
from rlm_core.otel_map import OtlpTarget, add_otlp_flag
from rlm_core.store.trace_store import StoreBusy, TraceStore

EVAL_SETTINGS = (
    "child_root_model",
    "api_base",
    "prompt",
    "temperature",
    "seed",
    "max_iterations",
    "max_depth",
    "max_llm_calls",
    "max_tokens",
    "max_cost_usd",
    "timeout_s",
    "cell_timeout_s",
)
"""The settings `eval` takes as flags (its root and sub models are chosen with --model /
--sub-model)."""


def eval_parser(sub: Any) -> None:
    from rlm_core.evaluate.evaluator import METHODS
    from rlm_core.evaluate.examples import EXAMPLES

    p = sub.add_parser("eval", help="score RLM vs the plain model on tasks with known answers")
    p.add_argument(
        "--task",
        action="append",
        choices=list(EXAMPLES),
        metavar="TASK",
        help=f"repeatable; one of {', '.join(EXAMPLES)} (default: needle)",
    )
    p.add_argument(
        "--size",
        action="append",
        type=int,
        metavar="CHARS",
        help="context characters, repeatable (default: 10000 and 100000)",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="root model, repeatable; also the baseline (default: demo/root)",
    )
    p.add_argument(
        "--sub-model",
        metavar="M",
        help="sub model of every RLM (default: demo/sub for demo models, else the root model)",
    )
    p.add_argument(
        "--method",
        action="append",
        choices=METHODS,
        help="repeatable: rlm, base or a strategy (default: rlm and base)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        help="run each row N times (seeds 1..N), to see how much its score swings; several "
        "numbers name the seeds themselves",
    )
    p.add_argument(
        "--executor",
        choices=("threads", "ray"),
        default="threads",
        help="threads: rows one after another in this process (default); ray: rows as Ray "
        "tasks, on a local Ray started for it or the cluster of --ray-address",
    )
    p.add_argument("--ray-address", metavar="ADDRESS", help="an existing Ray cluster (ray://...)")
    p.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="worker processes of the local Ray (default: one per core)",
    )
    add_otlp_flag(p)
    add_settings(p, EVAL_SETTINGS)
    p.add_argument("--traces-dir")
    p.add_argument("--csv", metavar="FILE", help="also write every row as CSV")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON list")


def seeds_of(given: list[int] | None, default: int | None) -> tuple[int | None, ...]:
    """`--seeds N`: seeds 1..N; `--seeds A B ...`: those; none: the config's one seed."""
    if not given:
        return (default,)
    if len(given) == 1:
        if given[0] < 1:
            raise ValueError("--seeds N needs N >= 1")
        return tuple(range(1, given[0] + 1))
    return tuple(given)


def worker_spans(store: TraceStore, rows: list[Any]) -> str:
    """What the rows' runs sent from the Ray workers (their exporters end with them; each run
    node says what it sent and what the collector did not confirm)."""
    sent = lost = 0
    for row in rows:
        node = store.node(row.run_id) if row.run_id else None
        tally = node.meta.get("otlp", {}) if node else {}
        sent += tally.get("spans", 0)
        lost += tally.get("dropped", 0) + tally.get("unconfirmed", 0)
    return f"OTLP: {sent} spans sent from the Ray workers, {lost} lost or unconfirmed"


def cmd_eval(args: argparse.Namespace) -> int:
    from rlm_core.evaluate.evaluator import (
        DEFAULT_METHODS,
        EvalPlan,
        Evaluator,
        default_sub,
        preflight,
        rows_csv,
        summary,
    )
    from rlm_core.evaluate.report import report_lines

    models = args.model or ["demo/root"]
    config = config_from(args)
    plan = EvalPlan(
        tasks=tuple(args.task or ["needle"]),
        sizes=tuple(args.size or [10_000, 100_000]),
        models=tuple((m, args.sub_model or default_sub(m)) for m in models),
        config=config,
        methods=tuple(dict.fromkeys(args.method or DEFAULT_METHODS)),
        seeds=seeds_of(args.seeds, config.seed),
    )
    otlp = OtlpTarget.given(args.otlp_endpoint)
    preflight(plan)
    store: TraceStore | None
    try:
        store = TraceStore(args.traces_dir)
    except StoreBusy as exc:
        store = None
        print(f"note: {exc} Rows are printed, not saved.", file=sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        print(f"[{done}/{total}] {label}", file=sys.stderr)

    try:
        if args.executor == "ray":
            from rlm_core.evaluate.on_ray import RayEvaluator  # Ray takes seconds to import

            evaluator: Evaluator = RayEvaluator(
                plan,
                store,
                address=args.ray_address,
                workers=args.ray_workers,
                on_progress=progress,
                otlp=otlp,
                traces_dir=Path(args.traces_dir) if args.traces_dir else None,
            )
        else:
            evaluator = Evaluator(plan, store, on_progress=progress, otlp=otlp)
        rows = evaluator.run()
        if otlp is not None and args.executor == "ray" and store is not None:
            print(worker_spans(store, rows), file=sys.stderr)
    finally:
        if store is not None:
            store.close()
    if otlp is not None:
        from rlm_core.otlp import closing_lines

        for line in closing_lines():
            print(line, file=sys.stderr)
    if args.csv:
        Path(args.csv).write_text(rows_csv(rows), encoding="utf-8")
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], ensure_ascii=False))
        return 0
    print(f"eval {evaluator.eval_id}")
    for s in summary(rows):
        shown = "did not fit" if s["score"] is None else f"{s['score']:.2f}"
        cost = "unknown" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
        if s["did_not_fit"] == s["questions"]:
            cost = "-"  # nothing was called
        wall = "-" if s["wall_s"] is None else f"{s['wall_s']:.1f} s"
        print(
            f"{s['task']:<12} {s['context_chars']:>12,} {s['model']:<20} "
            f"{s['method']:<12} score {shown:<12} cost {cost:<10} {wall}"
        )
    print("\n".join(report_lines(rows)))
    return 0
