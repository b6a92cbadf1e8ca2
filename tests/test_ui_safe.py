"""The one home of escaping and safe labels (ui/safe.py): what each helper lets through."""

from __future__ import annotations

from ui.safe import esc, file_name, safe_id, word


def test_word_keeps_names_and_drops_what_markdown_acts_on() -> None:
    assert word("max_iterations") == "max_iterations"
    assert word("iteration 2↔3 · cell 1 › llm_query 2?") == "iteration 2↔3 · cell 1 › llm_query 2?"
    assert word("[x](javascript:alert(1))") == "xjavascriptalert1"
    assert word("![p](http://evil.example/p.png)") == "phttpevilexampleppng"
    assert word("www.evil.example <b>`*#|") == "wwwevilexample b"
    assert word("<>[]") == "?" and word("a" * 100) == "a" * 60 and word("ab", limit=1) == "a"


def test_safe_id_is_an_id_or_nothing() -> None:
    assert safe_id("0006a1b2c3d4") == "0006a1b2c3d4" and safe_id("fork-ab_1") == "fork-ab_1"
    for bad in (None, "", "a b", "x)[y](z", "../etc", "a" * 81, "id&node=x"):
        assert safe_id(bad) is None


def test_esc_and_file_name() -> None:
    assert esc('<img src=x onerror="a">&\'') == "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#x27;"
    assert file_name("../../etc/passwd", "t.jsonl") == "passwd"
    assert file_name("my run (1).jsonl", "t.jsonl") == "my_run__1_.jsonl"
    assert file_name("", "t.jsonl") == "t.jsonl"
