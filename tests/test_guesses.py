"""Fewer made-up answers: what counts as an empty search, which answers are guesses, what the
root is told after each refusal, sub-calls that carry no text of the context, prompts too big
for the sub model, and runs that can be repeated (temperature and seed reach the server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import explorer_page, repl, stored
from fake_openai import FakeOpenAIServer, by_model

from rlm_core import RLM
from rlm_core.analysis import graph, views
from rlm_core.analysis.lint import lint
from rlm_core.engine import guesses, prompts
from rlm_core.engine.replay import replay_run
from rlm_core.models import replay
from rlm_core.store.trace_store import TraceStore

HAYSTACK = "Nothing to see in this line of the chronicle. " * 200
CONTEXT = HAYSTACK + "One of the special magic numbers for amber-falcon is: 4417. " + HAYSTACK
SEARCH = repl("import re\nprint(re.findall('magic number of amber', context))")


@pytest.mark.parametrize(
    "printed",
    [
        "",
        "set()",
        "frozenset()",
        "''",
        "defaultdict(<class 'int'>, {})",
        "Counter()",
        "Empty DataFrame\nColumns: [text]\nIndex: []",
        "Series([], dtype: object)",
        "array([], dtype=float64)",
        "-1",
        "matches: []\nport -> 0",
        "[]\n[]\nNone",
    ],
)
def test_empty_results_of_every_kind_count_as_found_nothing(printed: str) -> None:
    assert guesses.found_nothing([printed])


@pytest.mark.parametrize(
    "printed",
    [
        'Traceback (most recent call last):\n  File "<cell 1>", line 2, in <module>\n'
        "IndexError: list index out of range",
        "[]\nTraceback (most recent call last):\n"
        "AttributeError: 'NoneType' object has no attribute 'group'",
    ],
)
def test_taking_the_first_match_of_a_search_that_had_none_found_nothing(printed: str) -> None:
    # `list(re.finditer(...))[0]` and `re.search(...).group(1)` fail when nothing matched
    assert guesses.found_nothing([printed])
    assert not guesses.found_nothing(["port 7441\n" + printed])
    other = printed.replace("list index out of range", "tuple index out of range")
    assert other == printed or not guesses.found_nothing([other])


@pytest.mark.parametrize("printed", ["4417", "['amber-falcon is: 4417']", "{'a': 1}", "port: 7441"])
def test_anything_found_is_not_empty(printed: str) -> None:
    assert not guesses.found_nothing([printed])


def test_literals_and_fenced_literal_finals_are_written_out_not_computed() -> None:
    assert guesses.is_literal("{12345, 67890}") and guesses.is_literal("-3")
    assert not guesses.is_literal("sorted(found)")
    assert guesses.literal_final("FINAL({12345, 67890})") == "{12345, 67890}"
    assert guesses.literal_final("FINAL(answer)") is None
    assert guesses.literal_final("x = 1\nFINAL(3)") is None


def test_a_guess_in_a_set_or_a_fenced_cell_is_refused_with_new_words_each_time(fake: Any) -> None:
    other = repl("import re\nprint(re.findall('number for amber', context))")
    replies = [SEARCH, "FINAL({12345, 67890})", other, repl("FINAL(12345)"), SEARCH, "FINAL(12)"]
    found = repl("i = context.find('amber')\nprint(context[i - 40:i + 40])")
    result, _, root = fake(
        [*replies, found, "FINAL(4417)"], CONTEXT, "Which number is amber's?", prompt="small"
    )
    assert result.answer == "4417"
    assert stored(result.run_id)[1][0].meta["refused_guesses"] == [2, 4, 6]
    refusals = [root.seen[i][-1]["content"] for i in (2, 4, 6)]
    assert len({r.split("Question:")[0] for r in refusals}) == 3
    # from the second refusal on the root is handed code that searches word by word
    assert "for word in ['amber']" not in refusals[0]
    assert all("for word in ['amber']" in r for r in refusals[1:])
    assert "(no output)" not in result.answer


def test_a_guess_repeated_instead_of_searching_gets_the_search_run_for_it(fake: Any) -> None:
    """With greedy decoding a 1.5B model answered a refused guess 6 turns in a row, whatever
    it was told: the second time in a row, the search it was handed runs for it."""
    replies = [SEARCH, "FINAL({12345, 67890})", repl("FINAL(12345)"), "FINAL(4417)"]
    question = "Which magic number is amber-falcon's?"
    result, _, root = fake(replies, CONTEXT, question, prompt="small")
    assert result.answer == "4417"
    nodes = stored(result.run_id)[1]
    assert nodes[0].meta["refused_guesses"] == [2, 3]
    ran = [n for n in nodes if n.kind == "code" and n.meta.get("ran_for_model")]
    assert len(ran) == 1 and "for word in ['amber-falcon', 'magic']" in (ran[0].code or "")
    assert "Not accepted: your last search found nothing" in root.seen[2][-1]["content"]
    # what it copied is gone: the refused guesses and their refusals; the search reads as its
    # own turn, its output as the feedback
    sent = root.seen[3]
    assert not any("12345" in m["content"] or "Not accepted" in m["content"] for m in sent)
    assert sent[-2] == {"role": "assistant", "content": f"```repl\n{ran[0].code}\n```"}
    assert "amber-falcon -> " in sent[-1]["content"]
    assert "amber-falcon is: 4417" in sent[-1]["content"]
    # the trace rebuilds exactly what was sent, for the Explorer and for replays
    lms = sorted((n for n in nodes if n.kind == "lm"), key=lambda n: n.seq)
    assert views.lm_messages(nodes, lms[3]) == sent == replay.full_messages(nodes, lms[3])
    took_back = lms[2].meta["messages_before"] + len(json.loads(lms[2].input or "[]"))
    assert lms[3].meta["messages_before"] < took_back
    # the inspector says what was taken back and which reply the engine wrote
    assert lms[3].meta["took_back"] == 2 and lms[3].meta["engine_turn"] == len(sent) - 2
    at = explorer_page(run=result.run_id, node=lms[3].node_id)
    assert not at.exception
    assert any("took back the model's last 2 replies" in c.value for c in at.caption)
    labels = [e.label for e in at.expander if " chars" in e.label]
    assert [i for i, label in enumerate(labels) if "written by the engine" in label] == [
        len(sent) - 2
    ]
    at = explorer_page(run=result.run_id, node=ran[0].node_id)
    assert any("The engine wrote and ran this search" in i.value for i in at.info)
    store = TraceStore()
    try:  # the graph's outline keeps the mark: the cell is labelled as the engine's
        outline = store.outline(result.run_id)
    finally:
        store.close()
    assert graph.labels(outline)[ran[0].node_id].endswith("(engine)")
    store = TraceStore()
    try:  # and replays it with no model at all
        again = replay_run(store, result.run_id)
    finally:
        store.close()
    assert (again.status, again.answer) == ("ok", "4417")


def test_words_that_parse_as_an_expression_are_written_out_not_computed() -> None:
    defined = guesses.defined_names("import re\nhits = [m for m in re.finditer('x', context)]")
    assert defined == {"re", "hits", "m"}
    assert guesses.words_not_code("silver-harbor", defined)
    assert guesses.words_not_code("north - east", set())
    assert not guesses.words_not_code("len(hits)", defined)
    assert not guesses.words_not_code("hits", defined)
    assert not guesses.words_not_code("answer + '!'", {"answer"})
    assert not guesses.words_not_code("4417", set())  # a literal: is_literal's business


def test_a_hyphenated_guess_after_an_empty_search_is_refused(fake: Any) -> None:
    """`FINAL(amber-falcon)` parses as `amber - falcon`: no variable of the root's, so it is a
    written-out answer like any other, and after a search that found nothing, a guess."""
    found = repl("i = context.find('amber')\nprint(context[i - 40:i + 40])")
    result, _, _ = fake(
        [SEARCH, "FINAL(amber-falcon)", found, "FINAL(4417)"],
        CONTEXT,
        "Which number is amber-falcon's?",
        prompt="small",
    )
    assert result.answer == "4417"
    assert stored(result.run_id)[1][0].meta["refused_guesses"] == [2]


def test_a_last_chance_guess_after_empty_searches_is_reported_as_not_found(fake: Any) -> None:
    replies = [SEARCH, SEARCH, "FINAL(12345)"]
    result, _, _ = fake(replies, CONTEXT, prompt="small", max_iterations=2)
    assert (result.status, result.answer) == ("limit", prompts.NOT_FOUND)
    meta = stored(result.run_id)[1][0].meta
    assert meta["last_chance"] == {"reply": "12345", "taken": False, "why": "no search found text"}
    refused = [SEARCH, "FINAL(12345)", "FINAL(12345)"]
    again, _, _ = fake(refused, CONTEXT, prompt="small", max_iterations=2)
    assert again.answer == prompts.NOT_FOUND
    assert stored(again.run_id)[1][0].meta["last_chance"]["why"] == "refused as a guess before"


def test_a_sub_call_without_context_text_is_pointed_out_and_linted(fake: Any) -> None:
    oracle = repl("print(llm_query('What is the special magic number for amber-falcon?'))")
    reader = repl("print(llm_query('Find the number: ' + context[9000:9400]))")
    result, _, root = fake([oracle, reader, repl("FINAL('x')")], CONTEXT)
    assert guesses.BLIND_SUBCALL in root.seen[1][-1]["content"]
    assert guesses.BLIND_SUBCALL not in root.seen[2][-1]["content"]
    nodes = stored(result.run_id)[1]
    calls = [n for n in nodes if n.kind == "llm_query"]
    assert [bool(c.meta.get("no_context_text")) for c in calls] == [True, False]
    found = [f for f in lint(nodes) if f.rule == "blind_subcall"]
    assert found and found[0].node_ids == [calls[0].node_id]


def test_a_sub_call_too_big_for_the_served_window_comes_back_as_an_error(fake: Any) -> None:
    routes = {"/props": {"default_generation_settings": {"n_ctx": 2048}}}
    code = "r = llm_query_batched([context[:40000], context[:2000]])\nprint(r[0][:300], '|', r[1])"
    responder = by_model({"root": lambda b: repl(code) if len(b["messages"]) < 4 else "FINAL(1)"})
    responder_sub = by_model({"root": responder, "sub": lambda b: "small enough"})
    with FakeOpenAIServer(responder_sub, routes=routes) as server:
        result = RLM("openai/root", "openai/sub", server.base_url, prompt="full").run(
            CONTEXT, "What?"
        )
        sent = [r for r in server.requests if r["model"] == "sub"]
    assert len(sent) == 1  # the big one was never sent
    nodes = stored(result.run_id)[1]
    cell = next(n for n in nodes if n.kind == "code")
    assert "llm_query prompt too long for openai/sub" in cell.stdout
    assert "but it takes at most 1,792 (a window of 2,048" in cell.stdout
    assert cell.stdout.rstrip().endswith("| small enough")
    failed = next(n for n in nodes if n.kind == "llm_query" and n.status == "error")
    assert "Nothing was sent" in (failed.error or "")


def test_temperature_and_seed_reach_the_server_and_are_recorded(fake: Any) -> None:
    result, server, _ = fake([repl("FINAL('x')")], temperature=0.0, seed=7)
    body = server.requests[0]
    assert (body["temperature"], body["seed"]) == (0.0, 7)
    config = stored(result.run_id)[1][0].meta["config"]
    assert (config["temperature"], config["seed"]) == (0.0, 7)


def test_an_answer_from_output_that_never_mentions_the_question_is_refused(fake: Any) -> None:
    sample = repl("print(context[:300])")
    search = repl("i = context.find('amber-falcon')\nprint(context[i - 40:i + 60])")
    question = "Which magic number belongs to amber-falcon?"
    replies = [sample, "FINAL(17)", search, "FINAL(4417)"]
    result, _, root = fake(replies, "17 rows. " + CONTEXT, question, prompt="small")
    assert result.answer == "4417"
    told = root.seen[2][-1]["content"]
    assert "nothing your code printed mentions amber-falcon, so 17 is a guess" in told
    assert "for word in ['amber-falcon']:" in told  # the code to run, for the key word only
    assert guesses.key_words("What door number holds granite-willow crates?") == ["granite-willow"]
    assert guesses.key_words("What is the secret code for the vault?") == [
        "secret",
        "vault",
        "code",
    ]


def test_a_number_printed_next_to_another_key_is_not_the_answer(fake: Any) -> None:
    two = (
        HAYSTACK
        + "One of the special magic numbers for copper-meadow is: 9120. "
        + HAYSTACK
        + "One of the special magic numbers for amber-falcon is: 4417. "
        + HAYSTACK
    )
    both = repl(
        "import re\nfor m in re.finditer('magic numbers', context):\n"
        "    print(context[m.start() - 20:m.end() + 40])"
    )
    question = "Which magic number belongs to amber-falcon?"
    result, _, root = fake([both, "FINAL(9120)", "FINAL(4417)"], two, question, prompt="small")
    assert result.answer == "4417"
    told = root.seen[2][-1]["content"]
    assert "9120 is not the value next to amber-falcon in your output" in told
    # the passage of its own output that answers the question is quoted back to it
    quoted = [line for line in told.splitlines() if line.startswith("> ")]
    assert len(quoted) == 1 and "magic numbers for amber-falcon is: 4417" in quoted[0]
    assert "copper-meadow" not in quoted[0]
    assert guesses.supported("4417", "for amber-falcon is: 4417", question)
    assert not guesses.supported("12345", "for amber-falcon is: 4417", question)
    assert guesses.supported("the vault", "anything", question)  # no number: nothing to check


def test_a_repeated_cell_whose_output_misses_the_key_is_handed_a_search_for_it(fake: Any) -> None:
    """A 1.5B model searched a common word of the question, printed another key's fact, answered
    with its number, and ran the same cell again and again: it is handed code for the key word."""
    two = HAYSTACK + "The magic numbers for copper-meadow is: 9120. " + CONTEXT
    common = repl(
        "import re\nfor m in list(re.finditer('magic', context))[:1]:\n"
        "    print(context[m.start() - 20:m.end() + 40])"
    )
    question = "Which magic number belongs to amber-falcon?"
    key = repl("i = context.find('amber-falcon')\nprint(context[i - 40:i + 60])")
    replies = [common, "Final(9120)", common, key, "FINAL(4417)"]
    result, _, root = fake(replies, two, question, prompt="small")
    assert result.answer == "4417"
    assert stored(result.run_id)[1][0].meta["refused_guesses"] == [2]  # "Final(" is a FINAL
    told = root.seen[3][-1]["content"]
    assert "You ran exactly the same code" in told and "does not mention amber-falcon" in told
    assert "for word in ['amber-falcon']:" in told
    assert prompts.REPEATED_CODE not in told
    # the same cell whose output does show the key gets the usual note
    assert guesses.repeated(question, ["for amber-falcon is: 4417"]) is None


def test_the_search_is_run_for_a_model_once_and_only_with_words_to_search() -> None:
    evidence = guesses.Evidence("Which magic number is amber-falcon's?")
    evidence.saw(["print(1)"], [""])
    assert evidence.refuse("12") and evidence.refuse("13") and evidence.stuck()
    first = evidence.search()
    assert first is not None and "['amber-falcon', 'magic']" in first
    assert evidence.search() is None  # the same output again would not help
    nothing = guesses.Evidence("What?")  # no word to search for: refusals say so in words
    nothing.saw(["print(1)"], [""])
    told = [nothing.refuse("12"), nothing.refuse("13")]
    assert nothing.search() is None and all(t and "for word in" not in t for t in told)
    # a repeated cell printed the same passage twice: it is quoted once
    line = "keys: the magic number for amber-falcon is 4417 and nothing else\n"
    assert guesses.mentions(line * 2, "What is amber-falcon's number?") == [line.strip()]
