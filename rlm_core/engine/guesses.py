"""Telling a search that found nothing, and an answer made up after one, from real work.

A 1.5B root model whose search came back empty writes a plausible number (`FINAL(12345)`) or a
set of them; it asks `llm_query` the question with no text of the context, so the sub model
invents the answer too; told the same words after each refusal, it repeats the same guess. The
loop uses these checks to refuse such answers and to say something new each time.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

# What printing an empty result looks like, whatever its type: builtins, collections, numpy and
# pandas reprs, `str.find`'s -1, a bare `print()`.
_EMPTY_VALUE = re.compile(
    r"""(?x)^(?:
        |0|-1|None|False|\[\]|\{\}|\(\)|''|""|set\(\)|frozenset\(\)
        |\w*Counter\(\)|OrderedDict\(\)|deque\(\[\]\)|defaultdict\(.*,\s*\{\}\)
        |dict_(?:keys|values|items)\(\[\]\)|<re\.Scanner.*|array\(\[\].*\)
        |Series\(\[\].*\)|Empty\ DataFrame|Columns:\ \[.*\]|Index:\ \[\]
    )$"""
)
# "matches: []", "port -> 0", "count = 0": a label the code printed before the value
_LABEL = re.compile(r"^[\w\s'\".\-]{1,60}?\s*(?::|=|->)\s*(.*)$")
_WORD = re.compile(r"[A-Za-z0-9][\w\-]*")
_STOPWORDS = frozenset(
    {
        *("a", "an", "the", "is", "are", "was", "were", "be", "of", "for", "to", "in", "on"),
        *("at", "by", "with", "and", "or", "what", "which", "who", "whom", "whose", "where"),
        *("when", "why", "how", "does", "do", "did", "this", "that", "these", "those", "it"),
        *("its", "from", "as", "there", "their", "kept", "hold", "holds", "belong", "belongs"),
        *("number", "mentioned", "find", "give", "tell"),
    }
)


def empty_output(view: str) -> bool:
    """Every line printed is an empty result (or nothing was printed at all)."""
    for line in view.strip().splitlines():
        value = line.strip()
        labelled = _LABEL.match(value)
        if not (_EMPTY_VALUE.match(value) or (labelled and _EMPTY_VALUE.match(labelled[1]))):
            return False
    return True


# What code that takes the first match of a search raises when there is none:
# `list(re.finditer(...))[0]`, `re.search(...).group(1)`
_NO_MATCH_ERROR = re.compile(
    r"^(?:IndexError: list index out of range"
    r"|AttributeError: 'NoneType' object has no attribute"
    r" '(?:group|groups|groupdict|start|end|span)')$"
)
_TRACEBACK = "Traceback (most recent call last):"


def found_nothing(views: list[str]) -> bool:
    """Every block of a turn printed nothing or only empty results, or failed on taking the
    first match of a search that had none. A 1.5B model then made up an answer (a search for the
    question's exact words had missed), unless told it had failed."""
    return all(empty_output(view) or _no_match(view) for view in views)


def _no_match(view: str) -> bool:
    before, traceback, after = view.partition(_TRACEBACK)
    lines = after.strip().splitlines()
    return (
        bool(traceback and lines)
        and empty_output(before)
        and bool(_NO_MATCH_ERROR.match(lines[-1]))
    )


def is_literal(text: str) -> bool:
    """Python literal syntax: a constant, or a container of constants (`{12345, 67890}`)."""
    try:
        ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


PROVIDED = frozenset(
    {"context", "llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched", "SHOW_VARS"}
)
"""Names the REPL gives model code before it runs a cell."""


def defined_names(code: str) -> set[str]:
    """Names a cell binds (assignments, loops, imports, functions, classes, arguments)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def words_not_code(expression: str, defined: set[str]) -> bool:
    """An expression no cell could compute: it names only what was never defined, as
    `FINAL(silver-harbor)` does (text that parses as `silver - harbor`), so it is written out."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return False
    known = defined | PROVIDED | set(dir(builtins))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    calls = any(isinstance(n, (ast.Call, ast.Attribute, ast.Subscript)) for n in ast.walk(tree))
    return bool(names) and not calls and not names & known


def literal_final(code: str) -> str | None:
    """The value of a cell that is nothing but `FINAL(<literal>)`: an answer written out, not
    computed (the same guess as a text FINAL, only fenced)."""
    try:
        tree = ast.parse(code.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(
        call := getattr(tree.body[0], "value", None), ast.Call
    ):
        return None
    if not (isinstance(call.func, ast.Name) and call.func.id == "FINAL" and len(call.args) == 1):
        return None
    arg = ast.get_source_segment(code.strip(), call.args[0]) or ""
    return arg if is_literal(arg) else None


def question_words(question: str) -> list[str]:
    """The words of a question worth searching for on their own, rarest-looking first."""
    words = [w for w in _WORD.findall(question) if len(w) > 2 and w.lower() not in _STOPWORDS]
    unique = list(dict.fromkeys(words))
    return sorted(unique, key=lambda w: (not any(c in w for c in "-_0123456789"), -len(w)))[:4]


def key_words(question: str) -> list[str]:
    """The words an answer's evidence must mention: names like `granite-willow` or `X7` when the
    question has any (a plain word like "door" turns up in any long text), else all of them."""
    words = question_words(question)
    keys = [w for w in words if any(c in w for c in "-_0123456789") or w[1:] != w[1:].lower()]
    return keys or words


def on_topic(seen: str, question: str) -> bool:
    """Whether the code run so far or what it printed mentions the question's key words: an
    answer taken from a sample that never mentions them is a number picked at random (a 1.5B
    model printed 2,000 characters of the document and answered with a number in them)."""
    lowered, words = seen.lower(), key_words(question)
    return not words or any(word.lower() in lowered for word in words)


_DIGITS = re.compile(r"\d{2,}")
NEAR = 40
"""Characters around a number, beyond its own printed line, where a key word may stand (a fact
wrapped over two lines of the document)."""


def supported(answer: str, seen: str, question: str) -> bool:
    """Every number in the answer was printed on a line with a key word of the question (or
    within NEAR characters of one). Where several keys' facts were printed, a 1.5B model took
    the first number shown, not the one next to its own key; a number printed nowhere was made
    up."""
    words = [w.lower() for w in key_words(question)]
    lowered = seen.lower()

    def around(m: re.Match[str]) -> str:
        start = min(lowered.rfind("\n", 0, m.start()) + 1, max(0, m.start() - NEAR))
        end = lowered.find("\n", m.end())
        return lowered[start : max(m.end() + NEAR, len(lowered) if end < 0 else end)]

    for number in _DIGITS.findall(answer):
        found = re.finditer(rf"(?<!\d){number}(?!\d)", lowered)
        if not any(not words or any(w in around(m) for w in words) for m in found):
            return False
    return True


def mentions(printed: str, question: str, limit: int = 2) -> list[str]:
    """Up to `limit` passages of printed output around the question's key words, one line each:
    where the answer is, when the model answered with a number printed elsewhere."""
    lowered, found = printed.lower(), list[str]()
    spans: list[tuple[int, int]] = []
    for word in (w.lower() for w in key_words(question)):
        for m in re.finditer(re.escape(word), lowered):
            start, end = _passage(printed, m.start(), m.end())
            text = " ".join(printed[start:end].split())
            if text in found or any(a < end and start < b for a, b in spans):
                continue  # already quoted, or the same text printed again by a repeated cell
            spans.append((start, end))
            found.append(text)
            if len(found) == limit:
                return found
    return found


QUOTE = 120
"""Characters either side of a key word in a quoted passage: its sentence and the next."""
WRAP = 20
"""A key word this close to the end of its printed line may have its fact on the next line (a
document wrapped at 70 columns): the passage then takes NEAR characters of that line too."""


def _passage(printed: str, start: int, end: int) -> tuple[int, int]:
    """Where to quote around a match: its own printed line (other lines are other matches)."""
    line_start = printed.rfind("\n", 0, start) + 1
    line_end = len(printed) if (e := printed.find("\n", end)) < 0 else e
    if start - line_start < WRAP:
        line_start = max(0, line_start - NEAR)
    if line_end - end < WRAP:
        line_end = min(len(printed), line_end + NEAR)
    return max(line_start, start - QUOTE), min(line_end, end + QUOTE)


def search_code(words: list[str]) -> str:
    """Code that prints the text around a few matches of each word: what a refused model is
    handed to run (it imitates code far more reliably than it follows advice)."""
    return (
        "import re\n"
        f"for word in {words!r}:\n"
        "    for m in list(re.finditer(re.escape(word), context, re.IGNORECASE))[:3]:\n"
        '        print(word, "->", context[max(0, m.start() - 150): m.end() + 150])'
    )


def fenced(code: str) -> str:
    """Code as a root's reply carries it."""
    return f"```repl\n{code}\n```"


def refusal(count: int, question: str, guess: str, why: str, printed: str = "") -> str:
    """What a refused guess is told: different words each time, saying why it was refused and
    what to do, with the passage to read or the code to run. The same sentence repeated 7 times
    changed nothing. `why`: the last search came back `empty`, the output is `off_topic` (never
    mentions the question's key words), or the number is `unsupported` (printed, but not next to
    them). `printed`: every output so far."""
    lead = (
        ("Not accepted", "Again not accepted")[count - 1]
        if count <= 2
        else f"Refused {count} times"
    )
    keys = " or ".join(key_words(question))
    passages = mentions(printed, question) if why == "unsupported" else []
    if passages:
        shown = "\n".join(f"> {p}" for p in passages)
        return (
            f"{lead}: {guess} is not the value next to {keys} in your output; it belongs to "
            f"something else. Your output mentions {keys} here:\n{shown}\n"
            f"Reply FINAL(...) with the value this text gives for {keys}."
        )
    if why == "empty":
        told = f"{lead}: your last search found nothing, so {guess} is a guess."
        if count == 1 or not (words := question_words(question)):
            return f"{told} Search for each word of the question on its own."
        code = fenced(search_code(words))
        return f"{told} Run this search for single words of the question:\n{code}"
    return (
        f"{lead}: nothing your code printed mentions {keys}, so {guess} is a guess. Run this "
        f"search and read what it prints:\n{fenced(search_code(key_words(question)))}"
    )


def repeated(question: str, views: list[str]) -> str | None:
    """What a small model is told when it ran the same cell again and the output still does
    not mention the question's key words (None: the usual note will do)."""
    keys = key_words(question)
    if not keys or any(mentions(view, question, 1) for view in views):
        return None
    return (
        f"You ran exactly the same code as in your previous turn, and its output does not "
        f"mention {' or '.join(keys)}. Run this search instead:\n{fenced(search_code(keys))}"
    )


def no_context_text(prompt: str, spans: list[list[int]], context_text: str) -> bool:
    """A sub-call prompt that holds no text of the context: the sub model cannot see `context`,
    so all it can do is guess (a 1.5B root sent the bare question 28 turns in a row). A short
    context is never judged, and a line of it too short for the span index still counts."""
    if spans or len(context_text) < 1_000 or not prompt.strip():
        return False
    lines = [line.strip() for line in prompt.splitlines() if len(line.strip()) >= 16]
    return not any(line in context_text for line in lines[:20])


BLIND_SUBCALL = """\
Note: your llm_query prompt held no text of `context`. The helper model cannot see `context`, \
so its answer is a guess. Put the text to read into the prompt, for example \
llm_query("Question: ... Text: " + context[start:start + 4000])."""


@dataclass
class Evidence:
    """What a root model's answers can rest on, turn by turn: the code it ran and what that
    printed, whether the last turn found nothing, and the guesses refused so far."""

    question: str
    seen: str = ""
    printed: str = ""
    """What the cells printed (`seen` also holds their code)."""
    searched_in_vain: bool = False
    found_any: bool = False
    refused: list[str] = field(default_factory=list)
    in_a_row: int = 0
    """Guesses refused since a cell last ran."""
    searched_for_it: set[str] = field(default_factory=set)
    """The searches run for the model (each once: the same output again would not help)."""
    defined: set[str] = field(default_factory=set)
    """Names the root's cells have bound so far."""

    def saw(self, blocks: list[str], views: list[str]) -> bool:
        """Record a turn's cells; True when every one of them found nothing."""
        self.seen += "".join(f"{code}\n{view}\n" for code, view in zip(blocks, views, strict=False))
        self.printed += "".join(f"{view}\n" for view in views)
        self.defined.update(*(defined_names(code) for code in blocks))
        self.searched_in_vain = found_nothing(views)
        self.in_a_row = 0
        self.found_any = self.found_any or not self.searched_in_vain
        return self.searched_in_vain

    def refuse(self, guess: str) -> str | None:
        """What to tell the model when `guess` (an answer written out) rests on nothing: right
        after an empty search, on output that never mentions the question's key words, or a
        number not printed next to them. None: the answer stands."""
        if self.searched_in_vain:
            why = "empty"
        elif not on_topic(self.seen, self.question):
            why = "off_topic"
        elif not supported(guess, self.seen, self.question):
            why = "unsupported"
        else:
            return None
        self.refused.append(guess)
        self.in_a_row += 1
        return refusal(len(self.refused), self.question, guess, why, self.printed)

    def stuck(self) -> bool:
        """Refused twice in a row instead of running the code it was handed: with greedy
        decoding a 1.5B model then repeats its guess to the end of the run."""
        return self.in_a_row >= 2

    def search(self) -> str | None:
        """The search a stuck model was handed, as a cell to run for it; None when the question
        has no words to search for or this search already ran for it."""
        words = question_words(self.question) if self.searched_in_vain else key_words(self.question)
        code = search_code(words)
        if not words or code in self.searched_for_it:
            return None
        self.searched_for_it.add(code)
        return code

    def last_chance(self, value: str) -> str | None:
        """Why the last-chance answer is not the run's answer, or None when it may be."""
        if value in self.refused:
            return "refused as a guess before"
        return None if self.found_any else "no search found text"
