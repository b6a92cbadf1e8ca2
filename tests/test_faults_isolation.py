"""Hostile cells against the sandbox's isolation, in every mode this machine allows: no network,
no other process in sight, nothing left running after the run, compute counted as CPU time,
no directory handle from before the privilege drop, no other run's files, no oversized call
written. The branch without root is exercised by tests/test_faults_nonroot.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import repl, stored

from rlm_core.repl import ContextRef, Sandbox, bwrap, isolation
from rlm_core.repl.proctree import kill_uid
from rlm_core.types import CellResult

ALL_MODES = ("bubblewrap", "namespaces", "seccomp", "process")
CONFINED = ("bubblewrap", "namespaces", "seccomp")
"""The modes that refuse sockets."""
PID_NAMESPACE = ("bubblewrap", "namespaces")


def answer(fn: str, args: dict[str, Any]) -> Any:
    return ["ok"] * len(args["prompts"]) if fn.endswith("_batched") else "ok"


@pytest.fixture
def ctx(tmp_path: Path) -> ContextRef:
    path = tmp_path / "context.txt"
    path.write_text("a document\n" * 10)
    return ContextRef(str(path), "text", hide=(str(tmp_path / "traces"),))


def in_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Insist on one isolation mode; skipped where this machine does not allow it (CI installs
    bubblewrap and runs as root, so there every mode runs)."""
    monkeypatch.setenv("RLM_SANDBOX_ISOLATION", mode)
    try:
        isolation.choose()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def box(
    request: pytest.FixtureRequest, ctx: ContextRef, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    in_mode(request.param, monkeypatch)
    with Sandbox(ctx, answer, memory_mb=512) as sb:
        yield sb


def cell(sb: Sandbox, code: str, timeout_s: float = 10.0) -> CellResult:
    return sb.execute(code, timeout_s=timeout_s)


def test_this_machine_gets_the_strongest_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLM_SANDBOX_ISOLATION", raising=False)
    choice = isolation.choose()
    if shutil.which("bwrap"):
        assert choice.mode == "bubblewrap" and choice.seccomp
    assert isolation.describe(choice.label(None)).startswith("REPL worker: ")


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_bubblewrap_shows_a_worker_whose_code_is_under_tmp(tmp_path: Path) -> None:
    """A checkout under /tmp (CI's clean clones): the sandbox's own /tmp must not hide it."""
    code = Path(tempfile.mkdtemp(dir="/tmp")) / "repl"
    code.mkdir()
    (code / "hello.py").write_text("print('seen')")
    try:
        shown = [*isolation.interpreter_dirs(), str(code)]
        command = bwrap.argv(shown, str(tmp_path), as_root=False, setuid=False)
        done = subprocess.run(
            [*command, sys.executable, "-I", str(code / "hello.py")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(code.parent)
    assert done.stdout.strip() == "seen", done.stderr


# ---- the network -----------------------------------------------------------------------------


@pytest.mark.parametrize("box", CONFINED, indirect=True)
def test_the_worker_reaches_no_socket(box: Sandbox) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[Any] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "for family, address in ((socket.AF_INET, ('127.0.0.1', PORT)), (socket.AF_UNIX, None)):\n"
        "    try:\n"
        "        s = socket.socket(family)\n"
        "        if address:\n"
        "            s.connect(address)\n"
        "        print('open', family)\n"
        "    except OSError as exc:\n"
        "        print('refused', type(exc).__name__)\n"
    ).replace("PORT", str(port))
    try:
        result = cell(box, code)
        time.sleep(0.1)
    finally:
        listener.close()
    assert result.error is None and "open" not in result.stdout, result
    assert result.stdout.count("refused PermissionError") == 2
    assert accepted == []


# ---- processes -------------------------------------------------------------------------------


@pytest.mark.parametrize("box", PID_NAMESPACE, indirect=True)
def test_the_worker_sees_only_its_own_processes(box: Sandbox) -> None:
    code = (
        "import os\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print(pids, os.getpid(), os.getppid(), os.path.exists('/proc/APP'))"
    ).replace("APP", str(os.getpid()))
    result = cell(box, code)
    assert result.error is None, result
    # pid 1 (the namespace's reaper), the worker (2), nothing of the machine, not the app
    assert result.stdout.strip() == "[1, 2] 2 1 False", result.stdout


@pytest.mark.parametrize("box", PID_NAMESPACE, indirect=True)
def test_multiprocessing_works_on_a_private_bounded_dev_shm(box: Sandbox) -> None:
    code = (
        "import multiprocessing, os\n"
        "with multiprocessing.Pool(2) as pool:\n"
        "    print(pool.map(abs, [-1, -2]))\n"
        "shm = os.statvfs('/dev/shm')\n"
        "print(shm.f_blocks * shm.f_frsize // 2**20, os.listdir('/dev/shm'))"
    )
    result = cell(box, code, timeout_s=30)
    # its semaphores work, in memory the worker may fill only so far, seen by no one else
    assert result.error is None and result.stdout == "[1, 2]\n64 []\n", result


HOPPER = (
    "import ctypes, os, subprocess, threading, time\n"
    # the worker adopts its orphans and reaps them at once, so no zombie counts against
    # RLIMIT_NPROC: only a kill stops the hoppers
    "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
    "def reap():\n"
    "    while True:\n"
    "        try:\n"
    "            os.wait()\n"
    "        except ChildProcessError:\n"
    "            time.sleep(0.001)\n"
    "threading.Thread(target=reap, daemon=True).start()\n"
    # each process forks the next and exits: never where a /proc scan saw it (dash allows
    # 1000 nested calls, hence a fresh shell every 900 hops)
    "hop = 'f() { n=$((n+1)); [ $n -lt 900 ] || exec sh -c \"$HOP\"; '\n"
    "hop += 'echo . >&3; f & exit; }; n=0; f'\n"
    "for _ in range(2):\n"
    "    subprocess.Popen(['sh', '-c', 'exec 3>>beat; sh -c \"$HOP\"'], env={'HOP': hop},\n"
    "                     start_new_session=True, stdin=subprocess.DEVNULL)\n"
)


@pytest.mark.parametrize("box", ALL_MODES, indirect=True)
def test_fork_hoppers_are_gone_when_the_sandbox_closes(box: Sandbox) -> None:
    if box.isolation.startswith("process") and "uid" not in box.isolation:
        pytest.skip("without a PID namespace or a uid of its own a hopper escapes (README)")
    assert cell(box, HOPPER).error is None
    time.sleep(0.3)
    beat, uid = os.open(os.path.join(box.work_dir, "beat"), os.O_RDONLY), box._uid
    try:
        assert os.fstat(beat).st_size > 0  # they run
        box.close()
        before = os.fstat(beat).st_size
        time.sleep(0.5)
        assert os.fstat(beat).st_size == before, "a hopper outlived the sandbox"
    finally:
        if uid is not None:
            kill_uid(uid)  # whatever happened above, nothing is left running
        os.close(beat)


def test_compute_in_threads_while_a_sub_call_is_open_counts(ctx: ContextRef) -> None:
    def slow(fn: str, args: dict[str, Any]) -> str:
        time.sleep(4)
        return "late"

    code = (
        "import threading, time\n"
        "threading.Thread(target=llm_query, args=('slow',), daemon=True).start()\n"
        "t = time.time()\n"
        "while time.time() < t + 4:\n"
        "    pass\n"
        "print('computed for 4 s')"
    )
    with Sandbox(ctx, slow, memory_mb=512) as sb:
        started = time.monotonic()
        result = cell(sb, code, timeout_s=0.5)
        took = time.monotonic() - started
    # the sub-call kept wall time from counting: only the worker's CPU time stops the cell
    assert result.timed_out and "computed" not in result.stdout, result
    assert took < 3.5


# ---- files -----------------------------------------------------------------------------------


DIRECTORY_HANDLES = (
    "import os, stat\n"
    "found = []\n"
    "for fd in range(256):\n"
    "    try:\n"
    "        if stat.S_ISDIR(os.fstat(fd).st_mode):\n"
    "            found.append((fd, os.listdir(f'/proc/self/fd/{fd}/../..')))\n"
    "    except OSError:\n"
    "        pass\n"
    "print('handles', found)\n"
    "import statistics\n"
    "print(statistics.mean([1, 2, 3]))"
)


@pytest.mark.parametrize("box", ALL_MODES, indirect=True)
def test_no_directory_handle_reaches_model_code(box: Sandbox) -> None:
    result = cell(box, DIRECTORY_HANDLES)
    # imports still work after the drop to a uid of its own (the interpreter is under /root)
    assert result.error is None and result.stdout == "handles []\n2\n", result


def test_traces_are_private_to_their_owner(fake: Any, traces_dir: Path) -> None:
    result, _, _ = fake([repl("FINAL('done')")])
    assert result.status == "ok", result
    folders = [traces_dir, traces_dir / "journal", traces_dir / "blobs"]
    folders += [p for p in (traces_dir / "blobs").iterdir() if p.is_dir()]
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = [*traces_dir.glob("journal/*.jsonl"), *traces_dir.glob("blobs/*/*")]
    files.append(traces_dir / "rlm.duckdb")
    assert len(files) >= 3
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


@pytest.fixture
def project_traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A traces folder in a project folder anyone may enter (the default is ./traces), not
    under pytest's own private temporary folder."""
    project = Path(tempfile.mkdtemp(prefix="rlm-project-"))
    project.chmod(0o755)
    monkeypatch.setenv("RLM_TRACES_DIR", str(project / "traces"))
    try:
        yield project / "traces"
    finally:
        shutil.rmtree(project)


@pytest.mark.parametrize("mode", CONFINED)
def test_a_worker_reads_and_writes_no_other_run(
    mode: str, fake: Any, project_traces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_mode(mode, monkeypatch)
    if mode == "seccomp" and os.geteuid() != 0:
        pytest.skip("a worker of your own user reads your files without namespaces (README)")
    traces_dir = project_traces
    secret = "the other run's document: launch code 0000"
    first, _, _ = fake([repl("FINAL('done')")], context=secret)
    blob = traces_dir / "blobs" / hashlib.sha256(secret.encode()).hexdigest()[:2]
    blob = blob / hashlib.sha256(secret.encode()).hexdigest()
    assert blob.exists()
    targets = [str(blob), str(traces_dir / "journal" / f"{first.run_id}.jsonl")]
    targets.append(str(traces_dir / "rlm.duckdb"))
    code = (
        "out = []\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        out.append(open(path, 'rb').read(200))\n"
        "    except OSError as exc:\n"
        "        out.append(type(exc).__name__)\n"
        "try:\n"
        f"    open({str(traces_dir / 'journal' / 'planted.jsonl')!r}, 'w').write('{{}}')\n"
        "    out.append('planted')\n"
        "except OSError as exc:\n"
        "    out.append(type(exc).__name__)\n"
        "print(out)"
    )
    second, _, _ = fake([repl(code), repl("FINAL('done')")], context="another document")
    _, nodes = stored(second.run_id)
    shown = next(n for n in nodes if n.kind == "code").stdout
    assert "launch code" not in shown and "planted" not in shown, shown
    assert shown.count("Error") == 4, shown
    assert not (traces_dir / "journal" / "planted.jsonl").exists()
    run = next(n for n in nodes if n.kind == "run")
    assert run.meta["isolation"].startswith("process" if mode == "seccomp" else mode)


# ---- the pipe --------------------------------------------------------------------------------


FORGED = (
    "import json, os, struct, sys\n"
    "for n in range(2):\n"
    "    frame = json.dumps({'type': 'call', 'id': 9000 + n, 'fn': 'llm_query',\n"
    "                        'args': {'prompt': 'x' * 20_000_000, 'model': None}}).encode()\n"
    "    os.write(int(sys.argv[2]), struct.pack('>I', len(frame)) + frame)\n"
    "try:\n"
    "    llm_query('y' * 5_000_000)\n"
    "except ValueError as exc:\n"
    "    print(exc)\n"
    "print(llm_query('small'))"
)


def test_oversized_calls_are_refused_before_anything_is_written(
    fake: Any, traces_dir: Path
) -> None:
    result, _, _ = fake([repl(FORGED), repl("FINAL('done')")], cell_timeout_s=30)
    assert result.status == "ok", result
    _, nodes = stored(result.run_id)
    calls = [n for n in nodes if n.kind == "llm_query"]
    assert [n.input for n in calls] == ["small"]
    shown = next(n for n in nodes if n.kind == "code").stdout
    assert "a prompt of 5,000,000 characters is over the 4,000,000" in shown, shown
    written = sum(p.stat().st_size for p in traces_dir.rglob("*") if p.is_file())
    assert written < 5 * 2**20, written


def test_a_forged_oversized_call_never_reaches_the_handler(ctx: ContextRef) -> None:
    seen: list[int] = []

    def handler(fn: str, args: dict[str, Any]) -> str:
        seen.append(len(args["prompt"]))
        return "ok"

    code = (
        "import json, os, struct, sys\n"
        "frame = json.dumps({'type': 'call', 'id': 999, 'fn': 'llm_query',\n"
        "                    'args': {'prompt': 'x' * 4_000_001}}).encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(frame)) + frame)\n"
        "print(llm_query('fine'))"
    )
    with Sandbox(ctx, handler, memory_mb=512) as sb:
        result = cell(sb, code)
    assert result.error is None and seen == [4], (result, seen)


def test_a_forged_done_frame_is_cut_to_what_a_cell_may_leave(ctx: ContextRef) -> None:
    code = (
        "import json, os, struct, sys\n"
        "frame = json.dumps({'type': 'done', 'cell': 1, 'stdout': 'x' * 20_000_000,\n"
        "                    'variables': {f'v{i}': 'int' for i in range(100_000)},\n"
        "                    'reads': [[0, 1]] * 100_000}).encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(frame)) + frame)"
    )
    with Sandbox(ctx, answer, memory_mb=512, max_capture_chars=1000) as sb:
        result = cell(sb, code)  # the forged frame arrives first and is taken for the cell's
    assert len(result.stdout) < 1100 and "more chars not captured" in result.stdout
    assert len(result.variables) == len(result.read_spans) == 10_000


def test_the_run_records_its_isolation(fake: Any) -> None:
    result, _, _ = fake([repl("FINAL('done')")])
    _, nodes = stored(result.run_id)
    label = nodes[0].meta["isolation"]
    assert label == isolation.choose().label(1 if os.geteuid() == 0 else None)
    assert isolation.describe(label).startswith("REPL worker: ")
