"""Small pure pieces: parsing, provenance spans, prompts, ingest, demo policies, examples."""

from __future__ import annotations

import contextlib
import io
import random
import re
import time

import docx
import pytest

from rlm_core.context import flatten
from rlm_core.engine import prompts
from rlm_core.engine.parsing import code_blocks, text_final
from rlm_core.engine.provenance import spans_in
from rlm_core.engine.scripted import root_reply
from rlm_core.engine.spans import ContextIndex
from rlm_core.evaluate.examples import EXAMPLES, LABELS, NEEDLE, label_counts, needle_document
from rlm_core.ingest import context_from_files
from rlm_core.models import scripted
from rlm_core.readers import IngestError, file_text, html_text


def test_code_blocks_accept_repl_and_python_in_order_and_ignore_other_languages() -> None:
    reply = "a\n```repl\nx = 1\n```\n```bash\nls\n```\n```Python\ny = 2\n```"
    assert code_blocks(reply) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize(
    ("reply", "value", "var"),
    [
        ("Done.\nFINAL(42)", "42", None),
        ('FINAL("quoted")', "quoted", None),
        ("FINAL_VAR(answer)", None, "answer"),
        ("FINAL_VAR('answer')", None, "answer"),
        ("FINAL(first line\nsecond line)", "first line\nsecond line", None),
        ("the FINAL(x) is inline, not on its own line", None, None),
    ],
)
def test_text_final(reply: str, value: str | None, var: str | None) -> None:
    tag = text_final(reply)
    if value is None and var is None:
        assert tag is None
    else:
        assert tag is not None and (tag.value, tag.var) == (value, var)


def test_spans_find_every_slice_and_merge_neighbours() -> None:
    rng = random.Random(3)
    context = "".join(rng.choice("abcdefghij ") for _ in range(200_000))
    index = ContextIndex(context)
    prompt = f"Q?\n{context[1000:3000]}\n---\n{context[3000:5000]}\n{context[150_000:150_500]}"
    assert spans_in(prompt, index) == [[1000, 5000], [150_000, 150_500]]
    assert spans_in("nothing from the context here at all, not a single slice of it", index) == []
    assert spans_in(context[77:120], index) == [[77, 120]]  # short: found by a direct search
    assert spans_in("abc", index) == []  # too short to mean anything


def test_spans_of_a_list_context_are_offsets_into_the_joined_parts() -> None:
    parts = ["first file " * 30, "second file " * 30]
    _text, offsets = flatten(parts)
    assert offsets == [("0", 0), ("1", len(parts[0]) + 2)]
    index = ContextIndex(parts)
    start = len(parts[0]) + 2
    # whitespace at the ends of a matched run is left out: it may be the prompt's own
    assert spans_in("x " + parts[1], index) == [[start, start + len(parts[1].rstrip())]]


def test_spans_are_fast_on_a_big_context() -> None:
    context = "lorem ipsum dolor sit amet " * 400_000  # 10.8 M chars, highly repetitive
    index = ContextIndex(context)
    t = time.perf_counter()
    spans_in("q\n" + context[5_000_000:5_100_000], index)
    print(f"10 MB index + one 100 K-char prompt: {time.perf_counter() - t:.2f} s")


def test_prompts_describe_shape_without_content() -> None:
    message = prompts.first_message({"a.txt": "secret", "b.txt": "xx"}, "Q?")
    assert "secret" not in message
    assert "dict with 2 keys, 8 characters" in message and "'a.txt': 6" in message
    assert prompts.truncate("x" * 30, 10) == "x" * 10 + "\n... [+20 more chars]"


def test_ingest_text_encodings_and_errors() -> None:
    assert file_text("a.txt", "héllo".encode())[0] == "héllo"
    text, note = file_text("u16.txt", "héllo".encode("utf-16"))
    assert text == "héllo" and note and "UTF-16" in note
    text, note = file_text("l1.txt", "héllo".encode("latin-1"))
    assert text == "héllo" and note and "Latin-1" in note
    for name, data, message in [
        ("e.txt", b"", "empty"),
        ("b.bin", bytes(range(256)), "binary"),
        ("x.pdf", b"%PDF-1.4 broken", "PDF"),
        ("x.docx", b"PK not a zip", "DOCX"),
    ]:
        with pytest.raises(IngestError, match=message):
            file_text(name, data)


def test_ingest_docx_html_and_several_files() -> None:
    document = docx.Document()
    document.add_paragraph("Quarterly report.")
    document.add_paragraph("The secret code is 9.")
    buf = io.BytesIO()
    document.save(buf)
    assert "The secret code is 9." in file_text("r.docx", buf.getvalue())[0]
    page = "<html><head><script>alert(1)</script></head><body><p>Hello</p><p>World</p></body>"
    assert html_text(page) == "Hello\nWorld"
    ctx = context_from_files([("a.txt", b"one"), ("a.txt", b"two"), ("b.md", b"three")])
    assert ctx.value == {"a.txt": "one", "a.txt (2)": "two", "b.md": "three"}
    assert ctx.chars == 11


def test_demo_sub_answers_extractively_or_says_not_found() -> None:
    prompt = "Question: What is the secret code?\nExcerpt:\nRain fell. The secret code is 48213."
    assert scripted.sub_reply(prompt) == "The secret code is 48213."
    assert scripted.sub_reply("Question: What is the secret code?\nExcerpt:\nRain fell.") == (
        scripted.NOT_FOUND
    )


def test_demo_root_is_a_scripted_policy_that_writes_real_code() -> None:
    messages = [
        {"role": "system", "content": prompts.system_prompt(1000, None)},
        {"role": "user", "content": prompts.first_message("x" * 10, "What is the secret code?")},
    ]
    first = root_reply("demo/root", messages)
    assert code_blocks(first) and "context" in code_blocks(first)[0]
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "out"}]
    assert "re.compile" in root_reply("demo/root", messages)
    assert "rlm_query_batched" in root_reply("demo/recursive", messages + messages[-2:])


def test_examples_have_answers_computed_independently_of_the_generator() -> None:
    text = needle_document(50_000)
    assert text.count(NEEDLE) == 1 and len(text) >= 50_000
    tickets = EXAMPLES["tickets"].build(20_000)
    counts = {label: tickets.count(f"| label: {label} |") for label in LABELS}
    assert counts == dict(label_counts(tickets))
    q_count, q_least = EXAMPLES["tickets"].answers(tickets)
    assert q_count == str(counts["returns"])
    assert q_least == min(counts, key=lambda k: counts[k])


def test_small_model_quirks_fence_openers_and_expressions_in_text_final() -> None:
    from rlm_core.engine.parsing import is_expression

    assert code_blocks("```repl (```python\nx = 1\n```") == ["x = 1\n"]
    assert code_blocks("```repl\nx = 1\n```\n```repl-like\ny\n```") == ["x = 1\n"]
    assert is_expression('"Code: " + code.group()') and is_expression("answer")
    assert not is_expression("42") and not is_expression("The answer is 42")


def test_found_nothing_means_every_block_came_back_empty() -> None:
    assert prompts.found_nothing(["", "  0\n", "[]", "Counter()"])
    assert not prompts.found_nothing(["", "vault is 48213"])
    assert not prompts.found_nothing(["3"])


def test_the_small_prompts_worked_examples_behave_as_shown() -> None:
    """Each example's code, run on a text written the way its output shows, prints nothing
    where the example says so and what the example answers from."""
    for example in prompts.WORKED_EXAMPLES:
        shown = [
            line.split("-> ", 1)[-1].strip(".")
            for _, printed, _ in example.steps
            for line in printed.splitlines()
        ]
        context = "\n".join(["Nothing to see here.", *shown, "The end."])
        for code, printed, _ in example.steps:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, {"context": context})  # trusted: our own example code
            assert prompts.found_nothing([out.getvalue()]) == prompts.found_nothing([printed])
        # the answer itself, or (for counts over this tiny text) the same output but the numbers
        numbers = re.compile(r"\d+")
        last = numbers.sub("#", out.getvalue().strip()), numbers.sub("#", printed)
        assert example.answer in out.getvalue() or last[0] == last[1]
