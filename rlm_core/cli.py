"""`python -m rlm_core run|runs|show|export|import|replay|eval`: the engine from a terminal.

Every RLMConfig field is a flag of `run` (and the limits and model settings of `eval`), built
from the field's metadata. Commands that call no model import nothing that calls models.
Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlm_core.cli_eval import cmd_eval, eval_parser
from rlm_core.errors import DiskFull, ModelError
from rlm_core.flags import add_settings, config_from
from rlm_core.otel_map import OtlpTarget, add_otlp_flag
from rlm_core.readers import IngestError
from rlm_core.store.trace_store import StoreBusy, TraceStore
from rlm_core.types import RunResult


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlm_core", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an RLM over one or more files")
    run.add_argument("--context", action="append", required=True, metavar="PATH")
    run.add_argument("--query", required=True)
    add_settings(run)
    add_otlp_flag(run)
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

    eval_parser(sub)
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

    config = config_from(args)
    for model in dict.fromkeys([config.root_model, config.sub_model, config.child_root_model]):
        if model:
            check_model(model, api_base=config.api_base)
    check_cost_limit(config)  # before a 1 GB context is read for a run that cannot start
    context = load_context([Path(p) for p in args.context])
    otlp = OtlpTarget.given(args.otlp_endpoint)
    rlm = RLM(config=config, traces_dir=args.traces_dir, otlp=otlp)
    result = rlm.run(context.value, args.query)
    if rlm.trace_note:
        print(f"note: {rlm.trace_note}", file=sys.stderr)
    if otlp is not None:
        from rlm_core.otlp import closing_lines

        for line in closing_lines():
            print(line, file=sys.stderr)
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
