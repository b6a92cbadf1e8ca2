"""`python -m rlm_core` in a real subprocess: run/runs/show, bad input, and a SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeOpenAIServer, FakeReply, by_model, repl

from rlm_core import TraceStore


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    full = {**os.environ, "OPENAI_API_KEY": "sk-fake-cli", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rlm_core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in full.items() if v},  # an empty value means: unset it
    )


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "doc.txt"
    path.write_text(
        "filler line.\n" * 3000 + "The secret code is 48213.\n" + "more filler.\n" * 3000
    )
    return path


def test_run_with_demo_models_then_runs_and_show(doc: Path, traces_dir: Path) -> None:
    out = cli("run", "--context", str(doc), "--query", "What is the secret code?", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {
        "run_id",
        "status",
        "limit",
        "answer",
        "iterations",
        "llm_calls",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "wall_s",
    }
    assert result["status"] == "ok"
    assert "48213" in result["answer"]
    assert result["cost_usd"] == 0.0  # demo models are free, and known to be

    listed = json.loads(cli("runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == [result["run_id"]]

    shown = json.loads(cli("show", result["run_id"], "--json").stdout)
    assert shown["run"]["run_id"] == result["run_id"]
    kinds = [n["kind"] for n in shown["nodes"]]
    assert kinds[0] == "run" and "llm_query" in kinds and kinds[-1] == "final"
    for node in shown["nodes"]:
        assert set(node) >= {
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
        }
    sub = next(n for n in shown["nodes"] if n["kind"] == "llm_query")
    text = doc.read_text()
    start, end = sub["context_spans"][0]
    assert text[start:end] in sub["input"]

    human = cli("show", result["run_id"])
    assert human.returncode == 0 and "llm_query" in human.stdout


def test_several_context_files_become_a_dict(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha notes\n")
    (tmp_path / "b.md").write_text("# beta\nThe secret code is 77.\n")
    out = cli(
        "run",
        "--context",
        str(tmp_path / "a.txt"),
        "--context",
        str(tmp_path / "b.md"),
        "--query",
        "What is the secret code?",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert "77" in json.loads(out.stdout)["answer"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("binary", "binary"),
        ("badmodel", "nosuchprovider/x"),
        ("nokey", "ANTHROPIC_API_KEY"),
        ("down", "127.0.0.1:9"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(
    tmp_path: Path, doc: Path, setup: str, message: str
) -> None:
    args = ["run", "--context", str(doc), "--query", "q?"]
    env: dict[str, str] = {}
    if setup == "missing":
        args[2] = str(tmp_path / "nope.txt")
    elif setup == "empty":
        (tmp_path / "e.txt").write_bytes(b"")
        args[2] = str(tmp_path / "e.txt")
    elif setup == "binary":
        (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 10)
        args[2] = str(tmp_path / "b.bin")
    elif setup == "badmodel":
        args += ["--root-model", "nosuchprovider/x"]
    elif setup == "nokey":
        args += ["--root-model", "anthropic/claude-3-5-sonnet-20240620"]
        env["ANTHROPIC_API_KEY"] = ""
    elif setup == "down":
        args += ["--root-model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]
    out = cli(*args, env=env)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or setup == "down", out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_sigkill_mid_run_keeps_finished_nodes_and_marks_the_run_interrupted(
    traces_dir: Path, doc: Path
) -> None:
    def root(body: dict[str, Any]) -> str:
        return repl("for i in range(100):\n    llm_query(f'q{i}')")

    def slow_sub(body: dict[str, Any]) -> FakeReply:
        return FakeReply("answer", delay_s=0.05)

    with FakeOpenAIServer(by_model({"root": root, "sub": slow_sub})) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rlm_core",
                "run",
                "--context",
                str(doc),
                "--query",
                "q",
                "--root-model",
                "openai/root",
                "--sub-model",
                "openai/sub",
                "--api-base",
                server.base_url,
            ],
            cwd=ROOT,
            env={**os.environ, "OPENAI_API_KEY": "sk-fake"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while server.request_count < 15 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered = server.request_count
    assert answered >= 15
    store = TraceStore(traces_dir)
    try:
        [run] = store.list_runs()
        assert run.status == "interrupted"
        nodes = store.nodes(run.run_id)
        done = [n for n in nodes if n.kind == "llm_query" and n.status == "ok"]
        # every finished sub-call is there with its data (one may have died in flight)
        assert len(done) >= answered - 3
        assert all(n.output == "answer" and str(n.input).startswith("q") for n in done)
        assert all(n.status in ("ok", "interrupted") for n in nodes)
    finally:
        store.close()


def test_a_cli_run_while_the_app_holds_the_database_writes_a_journal_the_app_imports(
    traces_dir: Path, doc: Path
) -> None:
    app_store = TraceStore(traces_dir)  # stands in for the Streamlit server holding the file
    try:
        out = cli("run", "--context", str(doc), "--query", "What is the secret code?", "--json")
        assert out.returncode == 0, out.stderr
        assert "in use by another process" in out.stderr and "journal" in out.stderr
        run_id = json.loads(out.stdout)["run_id"]
        assert app_store.get_run(run_id) is None
        assert run_id in app_store.import_journals()
        run = app_store.get_run(run_id)
        assert run is not None and run.status == "ok" and "48213" in (run.answer or "")
        assert any(n.kind == "llm_query" for n in app_store.nodes(run_id))
    finally:
        app_store.close()


def test_replay_reproduces_a_run_with_no_model(doc: Path) -> None:
    first = json.loads(
        cli("run", "--context", str(doc), "--query", "What is the secret code?", "--json").stdout
    )
    out = cli("replay", first["run_id"], "--json")
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)
    assert again["answer"] == first["answer"] and again["run_id"] != first["run_id"]
    assert again["llm_calls"] == first["llm_calls"] and again["cost_usd"] == 0.0
    missing = cli("replay", "no-such-run")
    assert missing.returncode == 2 and "no run with id" in missing.stderr
