"""`python -m rlm_core run|runs|show|export|import|replay|eval`: the engine from a terminal.

Every RLMConfig field is a flag of `run` (and the limits and model settings of `eval`), built
from the field's metadata. Commands that call no model import nothing that calls models.
Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlm_core.config import RLMConfig, Setting, settings
from rlm_core.errors import DiskFull, ModelError
from rlm_core.readers import IngestError
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import RunResult

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


def _add_settings(p: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per config field; unset flags leave the field's default (shown in --help)."""
    for s in settings():
        if s.secret or (names is not None and s.name not in names):
            continue  # keys come from the provider's environment variable, never a flag
        default = "none" if s.default is None else s.default
        p.add_argument(
            s.flag,
            type=_parse(s),
            choices=s.choices or None,
            metavar=_metavar(s),
            help=f"{s.help} (default: {default})",
        )


def _parse(s: Setting) -> Any:
    def parse(text: str) -> Any:
        if s.optional and text.lower() in ("none", ""):
            return None
        return s.type(text)

    parse.__name__ = s.type.__name__  # argparse names the type in its error message
    return parse


def _metavar(s: Setting) -> str | None:
    if s.choices:
        return None
    return {int: "N", float: "X"}.get(s.type, "TEXT")


def _config(args: argparse.Namespace, **fixed: Any) -> RLMConfig:
    """The config the flags say; a field whose flag was not given keeps its default."""
    given = {
        s.name: getattr(args, s.name)
        for s in settings()
        if hasattr(args, s.name) and getattr(args, s.name) is not None
    }
    return RLMConfig(**{**given, **fixed})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlm_core", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an RLM over one or more files")
    run.add_argument("--context", action="append", required=True, metavar="PATH")
    run.add_argument("--query", required=True)
    _add_settings(run)
    run.add_argument("--traces-dir")
    run.add_argument("--json", action="store_true", help="print one JSON object")

    runs = sub.add_parser("runs", help="list stored runs, newest first")
    runs.add_argument("--traces-dir")
    runs.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="print one run and all its nodes")
    show.add_argument("run_id")
    show.add_argument("--traces-dir")
    show.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="write one run as JSONL, offline HTML or OTel JSON")
    export.add_argument("run_id")
    export.add_argument("--format", choices=["jsonl", "html", "otel"], default="jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.add_argument("--traces-dir")

    imp = sub.add_parser("import", help="import a JSONL export, a journal or an rlms log")
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true", help="overwrite a run with the same id")
    imp.add_argument("--traces-dir")

    replay = sub.add_parser("replay", help="run a stored run again from its recorded responses")
    replay.add_argument("run_id")
    replay.add_argument("--traces-dir")
    replay.add_argument("--json", action="store_true")

    _eval_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": cmd_run,
        "runs": cmd_runs,
        "show": cmd_show,
        "export": cmd_export,
        "import": cmd_import,
        "replay": cmd_replay,
        "eval": cmd_eval,
    }
    try:
        return commands[args.command](args)
    except (IngestError, ModelError, StoreBusy, DiskFull, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def cmd_run(args: argparse.Namespace) -> int:
    # the engine is imported by the commands that run models only
    from rlm_core.engine.budget import check_cost_limit
    from rlm_core.engine.rlm import RLM
    from rlm_core.ingest import load_context
    from rlm_core.models.resolve import check_model

    config = _config(args)
    for model in dict.fromkeys([config.root_model, config.sub_model, config.child_root_model]):
        if model:
            check_model(model, api_base=config.api_base)
    check_cost_limit(config)  # before a 1 GB context is read for a run that cannot start
    context = load_context([Path(p) for p in args.context])
    rlm = RLM(config=config, traces_dir=args.traces_dir)
    result = rlm.run(context.value, args.query)
    if rlm.trace_note:
        print(f"note: {rlm.trace_note}", file=sys.stderr)
    return report(result, args.json)


def report(result: RunResult, as_json: bool) -> int:
    """Print a run's outcome (one JSON object, or the answer plus a summary line)."""
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif result.status == "error":
        print(f"error: {result.error} (trace: run {result.run_id})", file=sys.stderr)
    else:
        print(result.answer if result.answer is not None else "(no answer)")
        cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        print(
            f"[{result.status}{' ' + result.limit if result.limit else ''}] run {result.run_id}: "
            f"{result.iterations} iterations, {result.llm_calls} calls, "
            f"{result.tokens_in + result.tokens_out:,} tokens, cost {cost}, {result.wall_s:.1f} s",
            file=sys.stderr,
        )
    return 0 if result.status in ("ok", "limit") else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from rlm_core.engine.replay import replay_run

    store = TraceStore(args.traces_dir)
    try:
        return report(replay_run(store, args.run_id), args.json)
    finally:
        store.close()


def cmd_runs(args: argparse.Namespace) -> int:
    store = TraceStore(args.traces_dir)
    try:
        runs = store.list_runs()
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], default=str, ensure_ascii=False))
        return 0
    for r in runs:
        question = (r.question or "").replace("\n", " ")[:60]
        print(f"{r.run_id}  {r.status:<11}  {r.root_model or '':<16}  {question}")
    if not runs:
        print("no runs yet", file=sys.stderr)
    return 0


NODE_FIELDS = (
    "node_id",
    "parent_id",
    "kind",
    "depth",
    "status",
    "model",
    "input",
    "output",
    "code",
    "stdout",
    "error",
    "context_spans",
    "started_at",
    "ended_at",
    "tokens_in",
    "tokens_out",
    "cost_usd",
)


def cmd_show(args: argparse.Namespace) -> int:
    store = TraceStore(args.traces_dir)
    try:
        run = store.get_run(args.run_id)
        if run is None:
            raise ValueError(f"no run with id {args.run_id}")
        nodes = [store.node(n.node_id) for n in store.nodes(args.run_id)]
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {k: getattr(n, k) for k in NODE_FIELDS} for n in nodes if n is not None
    ]
    if args.json:
        print(json.dumps({"run": run.to_dict(), "nodes": rows}, default=str, ensure_ascii=False))
        return 0
    print(f"run {run.run_id} [{run.status}]: {run.question}")
    print(f"answer: {run.answer}")
    for row in rows:
        text = (row["code"] or row["output"] or row["error"] or "").replace("\n", " ")[:80]
        print(f"{'  ' * row['depth']}{row['kind']:<9} {row['status']:<11} {text}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rlm_core.exchange.html import export_html
    from rlm_core.exchange.jsonl import export_jsonl
    from rlm_core.exchange.otel import export_otel

    store = TraceStore(args.traces_dir)
    try:
        if args.format == "jsonl":
            text = export_jsonl(store, args.run_id)
        elif args.format == "html":
            text = export_html(store, args.run_id)
        else:
            text = json.dumps(export_otel(store, args.run_id), indent=1) + "\n"
    finally:
        store.close()
    if not args.output:
        sys.stdout.write(text)
        return 0
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({args.format}, {len(text):,} chars)", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rlm_core.exchange.jsonl import import_file

    if not Path(args.file).is_file():
        raise ValueError(f"no such file: {args.file}")
    store = TraceStore(args.traces_dir)
    try:
        report = import_file(store, Path(args.file), replace=args.replace)
    finally:
        store.close()
    print(report.run_id)
    print(report.summary(), file=sys.stderr)
    for why in report.skipped:
        print(f"  skipped {why}", file=sys.stderr)
    return 0


# ---- eval ------------------------------------------------------------------------------------


def _eval_parser(sub: Any) -> None:
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
        help="sampling seeds: each RLM run once per seed, to see how much its score swings",
    )
    _add_settings(p, EVAL_SETTINGS)
    p.add_argument("--traces-dir")
    p.add_argument("--csv", metavar="FILE", help="also write every row as CSV")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON list")


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
    config = _config(args)
    plan = EvalPlan(
        tasks=tuple(args.task or ["needle"]),
        sizes=tuple(args.size or [10_000, 100_000]),
        models=tuple((m, args.sub_model or default_sub(m)) for m in models),
        config=config,
        methods=tuple(dict.fromkeys(args.method or DEFAULT_METHODS)),
        seeds=tuple(args.seeds or [config.seed]),
    )
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
        evaluator = Evaluator(plan, store, on_progress=progress)
        rows = evaluator.run()
    finally:
        if store is not None:
            store.close()
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
