"""Drills for the REPL sandbox: isolation, capture, FINAL, sub-calls, timeouts, crashes, cleanup."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_core.errors import LimitExceeded
from rlm_core.repl import ContextRef, Sandbox, SubCallError
from rlm_core.repl import sandbox as sandbox_module
from rlm_core.repl.proctree import tree

CONTEXT_TEXT = "The secret number is 42.\r\nSecond line."


class RecordingHandler:
    """Answers sub-calls like a tiny model would and remembers every call it got."""

    def __init__(self, delay_s: float = 0.0, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delay_s = delay_s
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, fn: str, args: dict[str, Any]) -> Any:
        with self._lock:
            self.calls.append((fn, args))
        time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        if fn.endswith("_batched"):
            return [f"answer to {p}" for p in args["prompts"]]
        return f"answer to {args['prompt']}"


@pytest.fixture
def text_ref(tmp_path: Path) -> ContextRef:
    path = tmp_path / "context.txt"
    path.write_bytes(CONTEXT_TEXT.encode())
    return ContextRef(str(path), "text")


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def sandbox(text_ref: ContextRef, handler: RecordingHandler) -> Iterator[Sandbox]:
    with Sandbox(text_ref, handler) as sb:
        yield sb


def run(sb: Sandbox, code: str, timeout_s: float = 10.0) -> Any:
    return sb.execute(code, timeout_s=timeout_s)


def process_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (containers may lack a reaping init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_namespace_persists_across_cells(sandbox: Sandbox) -> None:
    assert run(sandbox, "x = 20").error is None
    result = run(sandbox, "y = x + 22\nprint(y)")
    assert result.stdout == "42\n"
    assert result.variables == {"x": "int", "y": "int"}


def test_context_text_is_loaded_exactly(sandbox: Sandbox) -> None:
    result = run(sandbox, "context")
    assert result.stdout == repr(CONTEXT_TEXT) + "\n"


def test_trailing_expression_is_shown_but_none_is_not(sandbox: Sandbox) -> None:
    assert run(sandbox, "s = 'abc'\ns.upper()").stdout == "'ABC'\n"
    assert run(sandbox, "print('once')").stdout == "once\n"


def test_variables_describe_type_and_size(sandbox: Sandbox) -> None:
    code = "import re\ns = 'a' * 1234\nitems = list(range(12))\ndef f(): pass\n_hidden = 1"
    result = run(sandbox, code)
    assert result.variables == {"s": "str, 1,234 chars", "items": "list, 12 items", "f": "function"}
    assert run(sandbox, "print(SHOW_VARS())").stdout.splitlines() == [
        "s: str, 1,234 chars",
        "items: list, 12 items",
        "f: function",
    ]


def test_stdout_is_capped_with_marker(text_ref: ContextRef, handler: RecordingHandler) -> None:
    with Sandbox(text_ref, handler, max_capture_chars=100) as sb:
        result = run(sb, "print('x' * 250)")
    assert result.stdout_total_chars == 251
    assert result.stdout == "x" * 100 + "\n... [+151 more chars not captured]\n"


def test_exception_is_data_and_next_cell_works(sandbox: Sandbox) -> None:
    result = run(sandbox, "def f():\n    return 1 / 0\nprint('before')\nf()")
    assert result.stdout == "before\n"
    assert result.error is not None
    assert "ZeroDivisionError: division by zero" in result.error
    assert 'File "<cell' in result.error and "return 1 / 0" in result.error
    assert "worker.py" not in result.error
    assert result.stderr.endswith(result.error)
    assert run(sandbox, "print('fine')").stdout == "fine\n"


def test_syntax_error_is_reported(sandbox: Sandbox) -> None:
    result = run(sandbox, "x = (")
    assert result.error is not None and "SyntaxError" in result.error


def test_final_and_final_var(sandbox: Sandbox) -> None:
    assert run(sandbox, "FINAL(6 * 7)\nprint('not reached')").final == {"value": "42", "var": None}
    result = run(sandbox, "answer = 'Paris'\nFINAL_VAR('answer')")
    assert result.final == {"value": "Paris", "var": "answer"}
    assert result.error is None
    assert run(sandbox, "FINAL_VAR(answer)").final == {"value": "Paris", "var": "answer"}
    assert run(sandbox, "FINAL_VAR(7)").final == {"value": "7", "var": None}


def test_final_var_missing_variable_is_a_fixable_error(sandbox: Sandbox) -> None:
    result = run(sandbox, "FINAL_VAR('result')")
    assert result.final is None
    assert result.error is not None
    assert "NameError" in result.error and "no variable named 'result'" in result.error


def test_final_cannot_be_swallowed_by_except_exception(sandbox: Sandbox) -> None:
    result = run(sandbox, "try:\n    FINAL(1)\nexcept Exception:\n    pass\nprint('after')")
    assert result.final == {"value": "1", "var": None}
    assert result.stdout == ""


def test_secret_env_vars_are_invisible(
    monkeypatch: pytest.MonkeyPatch, text_ref: ContextRef, handler: RecordingHandler
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    monkeypatch.setenv("RLM_SECRET", "hush")
    with Sandbox(text_ref, handler) as sb:
        code = (
            "import os\nprint(sorted(os.environ))\n"
            "print(open('/proc/self/environ', 'rb').read().decode())"
        )
        result = run(sb, code)
    assert result.error is None
    assert "sk-secret-test" not in result.stdout and "hush" not in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout and "RLM_SECRET" not in result.stdout
    assert "PATH" in result.stdout


def test_cwd_is_a_private_temp_dir(sandbox: Sandbox) -> None:
    result = run(sandbox, "import os\nprint(os.getcwd())\nprint(os.environ['HOME'])")
    cwd, home = result.stdout.split()
    assert cwd == home == sandbox.work_dir
    assert Path(cwd).is_dir()


def test_infinite_loop_times_out_and_namespace_survives(sandbox: Sandbox) -> None:
    run(sandbox, "kept = 'yes'")
    started = time.monotonic()
    result = run(sandbox, "while True: pass", timeout_s=1)
    assert time.monotonic() - started < 4
    assert result.timed_out and not result.restarted
    assert result.error is not None and "interrupted after" in result.error
    assert run(sandbox, "print(kept)").stdout == "yes\n"


def test_loop_ignoring_interrupt_is_killed_and_restarted(sandbox: Sandbox) -> None:
    old_pid = sandbox.pid
    run(sandbox, "lost = 1")
    # The inner loop spans two lines on purpose: CPython 3.11 leaves the jump of a one-line
    # `while True: pass` outside the try's handler range, so that form is merely interrupted.
    code = (
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        pass"
    )
    result = run(sandbox, code, timeout_s=1)
    assert result.timed_out and result.restarted
    assert result.error is not None and "variables are lost" in result.error
    assert not process_alive(old_pid)
    after = run(sandbox, "print(len(context))\nprint('lost' in globals())")
    assert after.stdout == f"{len(CONTEXT_TEXT)}\nFalse\n"


def test_os_exit_restarts_worker(sandbox: Sandbox) -> None:
    result = run(sandbox, "import os\nos._exit(3)")
    assert result.restarted and not result.timed_out
    assert result.error is not None and "code 3" in result.error
    assert run(sandbox, "print(context[:3])").stdout == "The\n"


@pytest.mark.parametrize(
    "bomb",
    [
        "x = bytearray(50 * 2**30)",
        "x = 'a' * 10**11",
        "x = []\nwhile True:\n    x.append(bytearray(2**20))",
    ],
)
def test_memory_bomb_is_contained(
    bomb: str, text_ref: ContextRef, handler: RecordingHandler
) -> None:
    with Sandbox(text_ref, handler, memory_mb=512) as sb:
        result = run(sb, bomb, timeout_s=20)
        assert result.restarted or (result.error is not None and "MemoryError" in result.error)
        assert run(sb, "x = None\nprint('ok')").stdout == ("ok\n")


def test_clobbered_reserved_names_are_restored(sandbox: Sandbox) -> None:
    run(sandbox, "context = 1\nllm_query = None\nFINAL = 0\nSHOW_VARS = 'x'")
    result = run(sandbox, "print(context[:3])\nprint(llm_query('q'))\nFINAL('done')")
    assert result.stdout == "The\nanswer to q\n"
    assert result.final == {"value": "done", "var": None}
    assert result.variables == {}


def test_sub_calls_reach_handler_with_args(sandbox: Sandbox, handler: RecordingHandler) -> None:
    code = (
        "a = llm_query('p1')\nb = llm_query('p2', model='small')\n"
        "c = rlm_query('p3', context={'k': [1, 2]})\nd = rlm_query('p4')\nprint(a, c)"
    )
    result = run(sandbox, code)
    assert result.stdout == "answer to p1 answer to p3\n"
    # beside the arguments: where each text's pieces came from, and what the cell copied
    assert all({"_from", "_copied"} <= set(args) for _, args in handler.calls)
    assert [(fn, {k: v for k, v in a.items() if k[0] != "_"}) for fn, a in handler.calls] == [
        ("llm_query", {"prompt": "p1", "model": None}),
        ("llm_query", {"prompt": "p2", "model": "small"}),
        ("rlm_query", {"prompt": "p3", "context": {"k": [1, 2]}}),
        ("rlm_query", {"prompt": "p4", "context": None}),
    ]


def test_batched_call_is_one_handler_call(sandbox: Sandbox, handler: RecordingHandler) -> None:
    result = run(sandbox, "print(llm_query_batched(['a', 'b', 'c']))")
    assert result.stdout == "['answer to a', 'answer to b', 'answer to c']\n"
    run(sandbox, "rlm_query_batched(('x', 'y'), contexts=['cx', ['cy']])")
    assert [(fn, {k: v for k, v in a.items() if k[0] != "_"}) for fn, a in handler.calls] == [
        ("llm_query_batched", {"prompts": ["a", "b", "c"], "model": None}),
        ("rlm_query_batched", {"prompts": ["x", "y"], "contexts": ["cx", ["cy"]]}),
    ]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("llm_query(123)", "prompt must be a str"),
        ("llm_query_batched('abc')", "prompts must be a list of str"),
        ("rlm_query('q', context=object())", "JSON-serialisable"),
        ("rlm_query_batched(['a'], contexts=[1, 2])", "as long as prompts"),
    ],
)
def test_argument_types_are_checked(sandbox: Sandbox, code: str, message: str) -> None:
    result = run(sandbox, code)
    assert result.error is not None and "TypeError" in result.error and message in result.error


def test_sub_call_error_is_runtime_error_in_code(text_ref: ContextRef) -> None:
    handler = RecordingHandler(fail=SubCallError("model refused"))
    code = "try:\n    llm_query('q')\nexcept RuntimeError as e:\n    print('caught', e)"
    with Sandbox(text_ref, handler) as sb:
        assert run(sb, code).stdout == "caught model refused\n"


def test_limit_exceeded_ends_cell_even_inside_try_except(text_ref: ContextRef) -> None:
    handler = RecordingHandler(fail=LimitExceeded("max_llm_calls"))
    code = "try:\n    llm_query('q')\nexcept Exception:\n    print('swallowed')\nprint('after')"
    with Sandbox(text_ref, handler) as sb:
        result = run(sb, code)
        assert result.stdout == ""
        assert result.error is not None and "LimitExceeded" in result.error
        assert run(sb, "print('next')").stdout == "next\n"


def test_unexpected_handler_error_is_reraised(text_ref: ContextRef) -> None:
    handler = RecordingHandler(fail=KeyError("bug"))
    with Sandbox(text_ref, handler) as sb, pytest.raises(KeyError):
        run(sb, "llm_query('q')")


def test_time_waiting_on_handler_is_not_cell_time(text_ref: ContextRef) -> None:
    with Sandbox(text_ref, RecordingHandler(delay_s=2.0)) as sb:
        result = run(sb, "print(llm_query('slow'))", timeout_s=1)
    assert not result.timed_out and result.error is None
    assert result.stdout == "answer to slow\n"


def test_deadline_counts_handler_time(text_ref: ContextRef) -> None:
    with Sandbox(text_ref, RecordingHandler(delay_s=3.0)) as sb:
        run(sb, "pass")
        started = time.monotonic()
        result = sb.execute("llm_query('slow')", timeout_s=60, deadline=time.time() + 0.5)
        assert time.monotonic() - started < 2.5
        assert result.timed_out and result.error is not None and "time limit" in result.error


def test_concurrent_llm_query_from_threads(text_ref: ContextRef) -> None:
    handler = RecordingHandler(delay_s=0.5)
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    answers = list(pool.map(llm_query, ['a', 'b', 'c', 'd']))\n"
        "print(answers)"
    )
    with Sandbox(text_ref, handler) as sb:
        run(sb, "pass")
        started = time.monotonic()
        result = run(sb, code, timeout_s=5)
        elapsed = time.monotonic() - started
    assert result.stdout == str([f"answer to {p}" for p in "abcd"]) + "\n"
    assert len(handler.calls) == 4
    assert elapsed < 1.5


def test_cancel_returns_promptly(sandbox: Sandbox) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result = sandbox.execute("while True: pass", timeout_s=30, cancel=cancel)
    assert time.monotonic() - started < 2
    assert result.error == "cancelled"


@pytest.mark.parametrize("value", [["part one", "part two"], {"a.txt": "alpha", "b.txt": "beta"}])
def test_json_contexts_load(tmp_path: Path, handler: RecordingHandler, value: object) -> None:
    path = tmp_path / "context.json"
    path.write_text(json.dumps(value))
    with Sandbox(ContextRef(str(path), "json"), handler) as sb:
        result = run(sb, "print(type(context).__name__, len(context))")
    assert result.stdout == f"{type(value).__name__} 2\n"


def test_close_leaves_no_process(text_ref: ContextRef, handler: RecordingHandler) -> None:
    sb = Sandbox(text_ref, handler)
    run(sb, "import subprocess\nchild = subprocess.Popen(['sleep', '60'])")
    # numbered as this process sees them: in a PID namespace model code sees other numbers
    started: list[int] = []
    for _ in range(100):  # the kernel names an exec'd process a moment after Popen returns
        started = [p for p in tree(sb.pid) if Path(f"/proc/{p}/comm").read_text() == "sleep\n"]
        if started:
            break
        time.sleep(0.02)
    assert len(started) == 1
    worker_pid, work_dir = sb.pid, sb.work_dir
    sb.close()
    sb.close()
    assert not process_alive(worker_pid)
    assert not process_alive(started[0])
    assert not Path(work_dir).exists()
    with pytest.raises(RuntimeError):
        run(sb, "pass")


def test_a_worker_that_never_gets_ready_fails_loudly(
    tmp_path: Path, handler: RecordingHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "START_TIMEOUT_S", 0.05)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(["part"] * 2_000_000))  # parsing it takes longer than that
    with (
        Sandbox(ContextRef(str(path), "json"), handler) as sb,
        pytest.raises(RuntimeError, match=r"did not start in 0\.05 s"),
    ):
        run(sb, "pass")


def test_missing_context_fails_loudly(tmp_path: Path, handler: RecordingHandler) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with Sandbox(ContextRef(str(bad), "json"), handler) as sb, pytest.raises(RuntimeError):
        run(sb, "pass")


def test_final_var_of_something_no_variable_could_be_called_is_the_answer(
    sandbox: Sandbox,
) -> None:
    result = sandbox.execute('FINAL_VAR("48213")', timeout_s=5)
    assert result.final == {"value": "48213", "var": None}
    missing = sandbox.execute('FINAL_VAR("not_defined_here")', timeout_s=5)
    assert missing.final is None and "NameError" in (missing.error or "")
