"""Read instrumentation: cells report the ranges of `context` they read, in flatten() offsets."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeOpenAIServer, by_model, echo_sub, repl, stored

from rlm_core import RLM
from rlm_core.context import flatten
from rlm_core.repl import ContextRef, Sandbox
from rlm_core.repl.tracking import MAX_SPANS, Reads

TEXT = "".join(f"line {i:03d}: value {i * 7}\n" for i in range(200))
NEEDLE_AT = TEXT.find("line 150")


def no_calls(fn: str, args: dict[str, Any]) -> Any:
    raise AssertionError("no sub-calls expected")


@pytest.fixture(scope="module")
def text_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    path = tmp_path_factory.mktemp("ctx") / "context.txt"
    path.write_text(TEXT)
    with Sandbox(ContextRef(str(path), "text"), no_calls) as sb:
        yield sb


def reads(sb: Sandbox, code: str) -> list[list[int]]:
    result = sb.execute(code, timeout_s=20)
    assert result.error is None, result.error
    return result.read_spans


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = context[10:20]", [[10, 20]]),
        ("x = context[-5:]", [[len(TEXT) - 5, len(TEXT)]]),
        ("x = context[100:110:3]", [[100, 110]]),
        ("x = context[3]\ny = context[-1]", [[3, 4], [len(TEXT) - 1, len(TEXT)]]),
        ("x = context[:50] + context[50:60]", [[0, 60]]),
        ("n = sum(1 for ch in context if ch == 'l')", [[0, len(TEXT)]]),
        ("import re\nhits = list(re.finditer(r'value \\d+', context))", [[0, len(TEXT)]]),
        ("import re\nhits = re.findall('line', context)", [[0, len(TEXT)]]),
        ("import re\nm = re.search('line 150', context)", [[0, NEEDLE_AT + 8]]),
        ("import re\nm = re.compile('line 150').search(context, 1000)", [[1000, NEEDLE_AT + 8]]),
        ("parts = context.split('\\n')", [[0, len(TEXT)]]),
        ("rows = context.splitlines()", [[0, len(TEXT)]]),
        ("at = context.find('line 150')", [[0, NEEDLE_AT + 8]]),
        ("at = context.find('line 150', 500, 900)", [[500, 900]]),
        ("ok = 'line 150' in context", [[0, NEEDLE_AT + 8]]),
        ("ok = context.startswith('line', 40)", [[40, 44]]),
        ("n = len(context)", []),
        ("x = 1", []),
    ],
)
def test_reads_of_a_text_context(text_box: Sandbox, code: str, expected: list[list[int]]) -> None:
    assert reads(text_box, code) == expected


def test_reads_through_a_slice_are_reads_of_the_context_there(text_box: Sandbox) -> None:
    assert reads(text_box, "piece = context[100:200]") == [[100, 200]]
    assert reads(text_box, "a = piece[10:40]\nb = piece[-5:]") == [[110, 140], [195, 200]]
    assert reads(text_box, "import re\nn = len(re.findall('x', piece))") == [[100, 200]]
    assert reads(text_box, "short = piece[:5]\nx = short.upper()") == [[100, 105]]


def test_context_still_behaves_like_a_str(text_box: Sandbox) -> None:
    code = (
        "import json\n"
        "print(type(context).__name__, type(context), isinstance(context, str), len(context))\n"
        "print(json.dumps(context) == json.dumps(str(context)), type(context[:3]) is str)\n"
        "print(context[:9])\n"
        "print(f'{context[:4]}|{context.upper()[:4]}|{context.count(chr(10))}')"
    )
    result = text_box.execute(code, timeout_s=20)
    assert result.error is None, result.error
    assert result.stdout.splitlines() == [
        f"str <class 'str'> True {len(TEXT)}",
        "True True",
        "line 000:",
        "line|LINE|200",
    ]
    assert result.read_spans == [[0, len(TEXT)]]  # str(), upper(), count() read it all


def test_compiled_patterns_still_pass_as_patterns(text_box: Sandbox) -> None:
    code = (
        "import re\np = re.compile(r'value (\\d+)')\n"
        "print(isinstance(p, re.Pattern), p.pattern, re.search(p, 'value 5').group(1))\n"
        "print(re.sub('a', 'b', 'aaa', flags=re.I), re.split(',', 'a,b,c', 1))"
    )
    result = text_box.execute(code, timeout_s=20)
    assert result.error is None, result.error
    assert result.stdout == "True value (\\d+) 5\nbbb ['a', 'b,c']\n"


@pytest.mark.parametrize(
    "context",
    [
        ["first document text", "second one here", "third"],
        {"a.txt": "alpha alpha alpha", "b.txt": "bravo bravo", "c.txt": "charlie"},
    ],
)
def test_list_and_dict_contexts_use_flatten_offsets(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "context.json"
    path.write_text(json.dumps(context))
    flat, offsets = flatten(context)
    key = list(context)[1] if isinstance(context, dict) else 1
    base = offsets[1][1]
    with Sandbox(ContextRef(str(path), "json"), no_calls) as sb:
        assert reads(sb, f"x = context[{key!r}][2:5]") == [[base + 2, base + 5]]
        assert reads(sb, f"x = context[{key!r}].find('o')") == [
            [base, base + context[key].find("o") + 1]
        ]
        last = list(context)[-1] if isinstance(context, dict) else -1
        spans = reads(sb, f"x = context[{last!r}][:]")
        assert [flat[a:b] for a, b in spans] == [context[last]]
        result = sb.execute("print(type(context).__name__, len(context))", timeout_s=20)
        assert result.stdout == f"{type(context).__name__} 3\n"


def test_ten_megabyte_findall_overhead(tmp_path: Path) -> None:
    """Not a timing assertion: prints how much the instrumentation costs on a 10 MB scan."""
    path = tmp_path / "big.txt"
    path.write_text(("lorem ipsum dolor sit amet " * 40 + "\n") * 9_700)
    size = path.stat().st_size
    code = "import re, time\nt = time.perf_counter()\nn = len(re.findall(r'dolor', context))\n"
    code += "print(n, time.perf_counter() - t)"
    plain = "import re, time\ns = str.__str__(context)\nt = time.perf_counter()\n"
    plain += "n = len(re._compile(r'dolor', 0).findall(s))\nprint(n, time.perf_counter() - t)"
    with Sandbox(ContextRef(str(path), "text"), no_calls) as sb:
        started = time.perf_counter()
        tracked = sb.execute(code, timeout_s=60)
        cell_s = time.perf_counter() - started
        untracked = sb.execute(plain, timeout_s=60)
    assert tracked.read_spans == [[0, size]]
    t_tracked, t_plain = float(tracked.stdout.split()[1]), float(untracked.stdout.split()[1])
    print(
        f"\n10 MB re.findall: tracked {t_tracked * 1000:.1f} ms, untracked {t_plain * 1000:.1f} ms,"
        f" whole cell round trip {cell_s * 1000:.0f} ms"
    )


def test_engine_code_nodes_carry_read_spans(fake: Any) -> None:
    context = TEXT
    replies = [
        repl("at = context.find('line 150')\nsnippet = context[at:at + 30]\nprint(snippet)"),
        repl("FINAL(snippet)"),
    ]
    result, _, _ = fake(replies, context)
    assert result.status == "ok"
    _, nodes = stored(result.run_id)
    first, second = sorted((n for n in nodes if n.kind == "code"), key=lambda n: n.node_id)
    assert first.context_spans == [[0, NEEDLE_AT + 30]]
    assert first.meta["shown_spans"] == [[NEEDLE_AT, NEEDLE_AT + 30]]  # printed to the root
    assert second.context_spans == []


def test_child_rlm_reads_map_to_the_original_context() -> None:
    def root(body: dict[str, Any]) -> str:
        first = body["messages"][1]["content"]
        if len(body["messages"]) > 2:
            return "```repl\nFINAL(r)\n```"
        if "Question: child" in first:
            return repl("r = context[5:15]")
        return repl("r = rlm_query('child', context=context[1000:1100])")

    with FakeOpenAIServer(by_model({"root": root, "sub": echo_sub})) as server:
        rlm = RLM(
            "openai/root",
            "openai/sub",
            server.base_url,
            api_key="k",
            child_root_model="openai/root",
            retries=0,
        )
        result = rlm.run(TEXT, "top")
    assert result.answer == TEXT[1005:1015]
    _, nodes = stored(result.run_id)
    child_code = next(n for n in nodes if n.kind == "code" and n.depth == 1)
    assert child_code.context_spans == [[1005, 1015]]
    top_code = next(n for n in nodes if n.kind == "code" and n.depth == 0)
    assert top_code.context_spans == [[1000, 1100]]


def test_random_access_is_recorded_within_bounds() -> None:
    recorder = Reads()
    recorder.active = True
    for i in random.Random(7).sample(range(10**8), 50_000):
        recorder.add(i, i + 1)
    spans = recorder.take()
    assert 0 < len(spans) <= MAX_SPANS
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))
    recorder.active = False
    recorder.add(0, 10)  # outside a cell nothing is recorded
    assert recorder.take() == []


def test_strings_built_from_slices_tell_where_their_pieces_came_from(tmp_path: Path) -> None:
    """f-strings, `+`, joins, split and strip keep each piece's place; the worker sends them with
    the sub-call ([start in the prompt, end, start in the context])."""
    path = tmp_path / "context.txt"
    path.write_text(TEXT)
    sent: list[dict[str, Any]] = []

    def handler(fn: str, args: dict[str, Any]) -> str:
        sent.append(args)
        return "ok"

    lines = TEXT.splitlines()
    third, fourth = TEXT.index(lines[3]), TEXT.index(lines[4])
    joined = len(lines[3]) + 1
    code = (
        "a = context[100:150]\n"
        "llm_query(f'Q: {a}!')\n"
        "llm_query('x' + context[200:240] + context[240:260])\n"
        "llm_query('\\n'.join(context.splitlines()[3:5]))\n"
        "llm_query(str(context[300:350]).strip())\n"
        "llm_query(f'{context[0:5]} {3.14159:.2f} {a!r:.3}')"
    )
    with Sandbox(ContextRef(str(path), "text"), handler) as sb:
        result = sb.execute(code, timeout_s=20)
    assert result.error is None, result.error
    froms = [args["_from"][0] for args in sent]
    assert froms[0] == [[3, 53, 100]]
    assert froms[1] == [[1, 41, 200], [41, 61, 240]]
    assert froms[2] == [[0, joined - 1, third], [joined, joined + len(lines[4]), fourth]]
    assert froms[3] == [[0, 50, 300]] and TEXT[300:350].strip() == TEXT[300:350]
    assert froms[4] == [] and sent[4]["prompt"] == f"{TEXT[0:5]} 3.14 {TEXT[100:150]!r:.3}"


def test_rewritten_cells_keep_python_semantics(text_box: Sandbox) -> None:
    code = (
        "import os, threading\n"
        "t = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n"
        "width = 6\n"
        "print(f\"{3.14159:.2f}|{'x'!r}|{width=}|{'ab':>{width}}|{f'{1}{2}'}\")\n"
        "print(', '.join(str(i) for i in range(3)), os.path.join('a', 'b'), '-'.join([]))"
    )
    result = text_box.execute(code, timeout_s=20)
    assert result.error is None, result.error
    assert result.stdout == "3.14|'x'|width=6|    ab|12\n0, 1, 2 a/b \n"
