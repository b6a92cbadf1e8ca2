"""What the root model reads: the system prompt, the metadata-only first message, and the
per-turn feedback. The context itself never appears here, only its shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlm_core.context import parts, size_of
from rlm_core.engine.guesses import fenced, found_nothing
from rlm_core.models import served
from rlm_core.types import CellResult

PROMPT_NAME = "rlm-v1"

SYSTEM_PROMPT = """\
You answer a question about a context that is far too large to read directly. The context is \
loaded in a persistent Python REPL as the variable `context`; you only see its size and shape. \
You work by writing Python code that the REPL runs for you.

Write code in fenced blocks that start with ```repl (```python also works). Every block runs, in \
order, in the same namespace, so variables persist between turns. After your turn you get back \
each block's printed output (long output is cut to {max_output_chars} characters, with a note \
saying how much more there was) and the names of your variables. You never see the context \
unless your code prints parts of it.

Functions available in the REPL:
- `llm_query(prompt, model=None) -> str`: ask a language model (the sub model) one question. \
It can read roughly {sub_window} of text, so give it slices, not the whole context.
- `llm_query_batched(prompts, model=None) -> list[str]`: many independent llm_query calls run \
concurrently; much faster than a loop.
- `rlm_query(prompt, context=None) -> str`: hand a sub-problem to a child recursive model that \
gets its own REPL with `context` set to the object you pass (or to the prompt).
- `rlm_query_batched(prompts, contexts=None) -> list[str]`: several child models at once.
- `SHOW_VARS() -> str`: your variables with their types and sizes.
- `FINAL(value)`: finish and answer with `value`.
- `FINAL_VAR(name)`: finish and answer with the value of the variable called `name` (a string).

How to work well:
1. Probe first: print the type, the length and a short sample (for example `context[:1000]`).
2. Narrow down with code: regular expressions (`re.finditer`), keyword search, splitting on \
headings, lines or records. Print counts and positions, not megabytes.
3. Cut the relevant text into chunks that fit the sub model and ask about each chunk with \
`llm_query_batched`; put the question and the chunk in each prompt.
4. Build the answer in variables: collect sub-answers in a list, combine or count them with \
code, check them if unsure.
5. Finish by running `FINAL_VAR("answer")` or `FINAL(answer)` in a code block, only after your \
code has actually looked at the context. Do not guess an answer before you have read the output.
"""

FEEDBACK_TAIL = """\
Question: {question}
Keep working with code. When the output above contains the answer, end with a ```repl block \
that calls FINAL(...) or FINAL_VAR("variable_name")."""

NO_CODE_FEEDBACK = """\
Your reply had no ```repl code block, so nothing ran. Write code that reads `context` \
to find the answer."""

IGNORED_TEXT_FINAL = """\
Note: a FINAL tag written as text next to code is ignored; only FINAL run inside code (or a \
reply with no code at all) ends the task. Check the output above, then call FINAL in code."""

LAST_CHANCE = """\
You have no turns left. Answer now with your best answer: one line with FINAL and the answer \
itself inside the parentheses, and no code block."""


SMALL_PROMPT_NAME = "rlm-small-v2"
SMALL_SYSTEM_PROMPT = """\
You answer a question about a long text stored in the Python variable `context`. You cannot \
see it. Each turn, write one ```repl block of Python code; you then see what it printed (at \
most {max_output_chars} characters). First print a sample to see how the text is written, then \
search it (re.finditer, printing the text around each match) or count in it (re.findall, \
collections.Counter) with patterns that fit what you saw. `llm_query(prompt)` asks a helper \
model about a piece of text that you put into the prompt. When the printed output contains the \
answer, reply with one line: FINAL(the answer). Answer only from printed output; never guess."""

SMALL_MODEL_PREFIXES = ("local/", "ollama/", "ollama_chat/")
"""Models that get the short prompt under "auto" when nothing tells their size: they run on the
user's machine. A 1.5B model followed the long prompt's examples literally and answered without
looking (LOCAL_MODEL.md)."""
SMALL_MAX_PARAMS = 8.5e9
"""Up to 8 B parameters (and 7.6 B "7B" models) count as small: the sizes served on a laptop."""

REPEATED_CODE = """\
You ran exactly the same code as in your previous turn; its output is above. Try a different \
search, or answer with FINAL(...) if the output already contains the answer."""


FOUND_NOTHING = """\
Your code found nothing, so the output does not contain the answer. Search for each word of \
the question on its own, or print a sample of `context` to see how it is written."""

NOT_FOUND = "not found"
"""The run's answer when the last-chance reply was a guess after searches that all came back
empty: saying so beats passing a made-up value on as the answer."""


def prompt_name(choice: str, root_model: str) -> str:
    """The prompt variant by the model's name alone (no server is asked): for estimates."""
    return choose_prompt(choice, root_model, ask=False)[0]


def choice_of(name: object) -> str | None:
    """The RLMConfig.prompt choice that gives a recorded variant ("rlm-small-v2" -> "small")."""
    return {SMALL_PROMPT_NAME: "small", PROMPT_NAME: "full"}.get(str(name))


def choose_prompt(
    choice: str,
    root_model: str,
    api_base: str | None = None,
    api_key: str | None = None,
    *,
    ask: bool = True,
) -> tuple[str, str]:
    """(prompt variant, why). "auto" takes, in order: the parameter count the model's server
    reports (llama.cpp's server, Ollama); a size in a name (the one typed, then the ones the
    server reports: vLLM's repository, llama.cpp's file, LM Studio's id); then small for models
    run from GGUF files on the user's machine (`local/`, `ollama/`, or a server that shows it is
    llama.cpp, llama-cpp-python, LM Studio or Ollama); else the full prompt. Small: <= 8 B."""
    if choice != "auto":
        return (SMALL_PROMPT_NAME if choice == "small" else PROMPT_NAME), f"chosen: {choice}"
    base = served.asks_server(root_model, api_base) if ask else None
    facts = served.describe(root_model, base, api_key) if base else served.Served()
    size, source = facts.params, facts.params_source
    for name in (root_model, *facts.names) if size is None else ():
        if (size := served.params_in_name(name)) is not None:
            source = f"the name {name!r}"
            break
    if size is not None:
        small = size <= SMALL_MAX_PARAMS
        why = f"{size / 1e9:.3g} B parameters ({source})"
    elif facts.runtime in served.GGUF_RUNTIMES or root_model.startswith(SMALL_MODEL_PREFIXES):
        small = True
        where = f"served by {facts.runtime}" if facts.runtime else "a `local/` or Ollama model"
        why = f"size unknown; {where}, which runs GGUF files on the user's machine"
    else:
        small, why = False, "size unknown"
    return (SMALL_PROMPT_NAME if small else PROMPT_NAME), f"auto: {why}"


def system_prompt(
    max_output_chars: int, sub_window_tokens: int | None, name: str = PROMPT_NAME
) -> str:
    if name == SMALL_PROMPT_NAME:
        return SMALL_SYSTEM_PROMPT.format(max_output_chars=f"{max_output_chars:,}")
    window = f"{sub_window_tokens:,} tokens" if sub_window_tokens else "a few thousand tokens"
    return SYSTEM_PROMPT.format(max_output_chars=f"{max_output_chars:,}", sub_window=window)


def describe_context(context: Any) -> str:
    """Type, total length and part lengths: everything the root learns about the context."""
    total = size_of(context)
    if isinstance(context, str):
        return f"type str, {total:,} characters"
    sizes = [(name, len(text)) for name, text in parts(context)]
    if isinstance(context, dict):
        return (
            f"type dict with {len(sizes)} keys, {total:,} characters in all; "
            f"characters per key: {_preview_sizes(dict(sizes))}"
        )
    if isinstance(context, list):
        listed = ", ".join(f"{n:,}" for _, n in sizes[:50])
        more = f", ... ({len(sizes) - 50} more)" if len(sizes) > 50 else ""
        return (
            f"type list with {len(sizes)} items, {total:,} characters in all; "
            f"characters per item: [{listed}{more}]"
        )
    return f"type {type(context).__name__}"


def _preview_sizes(sizes: dict[str, int]) -> str:
    items = list(sizes.items())
    shown = ", ".join(f"{k!r}: {n:,}" for k, n in items[:50])
    return "{" + shown + (f", ... ({len(items) - 50} more)" if len(items) > 50 else "") + "}"


SMALL_FEEDBACK_TAIL = """\
Question: {question}
When the output above contains the answer, reply FINAL(the answer). Otherwise write another \
```repl block."""


@dataclass(frozen=True)
class WorkedExample:
    question: str
    context_chars: int
    steps: tuple[tuple[str, str, tuple[str, ...]], ...]
    """Per turn: the code, what it printed, the REPL's variables after it."""
    answer: str


WORKED_EXAMPLES = (
    WorkedExample(
        "How many orders were shipped to Norway?",
        2_310_554,
        (
            (
                "print(context[:300])",
                "order 000001 | country: Sweden | 2 chairs, paid by card\n"
                "order 000002 | country: Norway | 1 table, paid by invoice\n"
                "order 000003 | country: Sweden | 4 lamps, paid by card\n"
                "order 000004 | country: Denmark | 1 sofa, paid by card\n"
                "order 000005 | country: Finland | 2 rugs, paid",
                (),
            ),
            (
                "import re\nfrom collections import Counter\n"
                'print(Counter(re.findall(r"country: (\\w+)", context)))',
                "Counter({'Sweden': 10412, 'Norway': 5937, 'Denmark': 3310, 'Finland': 1204})",
                ("Counter",),
            ),
        ),
        "5937",
    ),
    WorkedExample(
        "Which port does the backup server listen on?",
        734_020,
        (
            (
                'import re\nfor m in re.finditer(r"port of the backup server", context, '
                "re.IGNORECASE):\n    print(context[max(0, m.start() - 300): m.end() + 300])",
                "",
                (),
            ),
            (
                'import re\nfor word in ["port", "backup", "server", "listen"]:\n'
                "    for m in list(re.finditer(word, context, re.IGNORECASE))[:3]:\n"
                '        print(word, "->", context[max(0, m.start() - 150): m.end() + 150])',
                "backup -> ...were moved to the new rack. Since the migration the backup server "
                "takes connections on 7441, from the office network only. The old...\n"
                "server -> ...the mail server was restarted twice on Monday; the logs are...\n"
                "server -> ...since the migration the backup server takes connections on 7441...",
                ("word", "m"),
            ),
        ),
        "7441",
    ),
)


def worked_example(example: WorkedExample) -> list[dict[str, str]]:
    """One solved exchange in exactly the format of a real one. Small models see these before
    their question: a 1.5B model imitates a conversation far more reliably than it follows
    instructions (without them it wrote empty or language-less fences, or no code at all)."""
    shape = f"type str, {example.context_chars:,} characters"
    messages = [{"role": "user", "content": first_message(None, example.question, shape)}]
    for code, printed, variables in example.steps:
        note = FOUND_NOTHING if found_nothing([printed]) else ""
        feedback = turn_feedback(
            [cell_feedback(1, printed)], example.question, list(variables), note, SMALL_PROMPT_NAME
        )
        messages += [
            {"role": "assistant", "content": fenced(code)},
            {"role": "user", "content": feedback},
        ]
    return [*messages, {"role": "assistant", "content": f"FINAL({example.answer})"}]


def worked_example_positions(name: str) -> range:
    """Where the worked examples sit in a root's message list (empty for the full prompt)."""
    count = len(_examples(name))
    return range(1, 1 + count)


def _examples(name: str) -> list[dict[str, str]]:
    examples = WORKED_EXAMPLES if name == SMALL_PROMPT_NAME else ()
    return [m for e in examples for m in worked_example(e)]


def opening(context: Any, question: str, system: str, name: str) -> list[dict[str, str]]:
    """The messages of a root's first turn: system prompt, worked example (small), question."""
    first = {"role": "user", "content": first_message(context, question)}
    return [{"role": "system", "content": system}, *_examples(name), first]


def first_message(context: Any, question: str, shape: str | None = None) -> str:
    """`shape` stands in for describing `context` (the worked examples have no real one)."""
    return (
        f"The context is loaded in the REPL as `context`: {shape or describe_context(context)}.\n\n"
        f"Question: {question}\n\n"
        "You have not looked at the context yet. Start by probing it with code."
    )


def cell_feedback(index: int, shown: str) -> str:
    return f"Output of code block {index}:\n{shown if shown.strip() else '(no output)'}"


def truncate(text: str, limit: int) -> str:
    """Cut text to `limit` chars with an explicit marker of how much was dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [+{len(text) - limit:,} more chars]"


def model_view(result: CellResult, limit: int) -> str:
    """The text of one cell's result that the root model is shown."""
    parts = [result.stdout]
    if result.stderr:
        parts.append(result.stderr)
    if result.error and result.error not in result.stderr:
        parts.append(result.error)
    text = "\n".join(p.rstrip("\n") for p in parts if p)
    return truncate(text, limit)


def turn_feedback(
    blocks: list[str],
    question: str,
    variables: list[str],
    extra: str = "",
    name: str = PROMPT_NAME,
) -> str:
    names = ", ".join(variables) if variables else "(none yet)"
    body = "\n\n".join(blocks)
    note = f"\n\n{extra}" if extra else ""
    tail = SMALL_FEEDBACK_TAIL if name == SMALL_PROMPT_NAME else FEEDBACK_TAIL
    return f"{body}\n\nREPL variables: {names}{note}\n\n" + tail.format(question=question)
