"""Extract what a root model's response asks for: fenced code blocks and text FINAL tags."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from rlm_core.engine.guesses import is_literal

# A fence opens with ```repl or ```python (any case) on its own line; ``` on its own line closes it.
_CODE_BLOCK = re.compile(
    # whatever follows the language on the opening line is ignored: small models write
    # openers like "```repl (```python"
    r"^[ \t]*```[ \t]*(?:repl|python|py)(?![\w-])[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
    re.DOTALL | re.MULTILINE | re.IGNORECASE,
)
# "Final(" too: a 1.5B model that was refused once wrote its next answer that way
_FINAL_VAR_TAG = re.compile(
    r"^[ \t]*(?:FINAL_VAR|Final_var)\(\s*[\"']?([A-Za-z_]\w*)[\"']?\s*\)[ \t]*$", re.MULTILINE
)
_FINAL_TAG = re.compile(r"^[ \t]*(?:FINAL|Final)\((.*)\)[ \t]*$", re.MULTILINE)
# A multi-line answer: FINAL( opens a line and its ) closes the whole response.
_FINAL_TAG_TO_END = re.compile(r"^[ \t]*(?:FINAL|Final)\((.*)\)\s*\Z", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class TextFinal:
    """A FINAL written as text, outside code: a value (literal or expression) or a variable name."""

    value: str | None = None
    var: str | None = None

    @property
    def expression(self) -> bool:
        """A value the REPL must evaluate (FINAL("Code: " + code)), not one written out."""
        return self.var is None and bool(self.value) and is_expression(self.value or "")

    @property
    def literal(self) -> bool:
        """A value written out as it is: neither a variable nor an expression."""
        return self.var is None and not self.expression


def code_blocks(response: str) -> list[str]:
    """All ```repl / ```python blocks, in order."""
    return [m.group(1) for m in _CODE_BLOCK.finditer(response)]


def text_final(response: str) -> TextFinal | None:
    """A FINAL(...) or FINAL_VAR(name) tag on its own line, or None.

    Only meaningful for responses without code: the engine ignores tags beside code, because a
    model that writes both tends to answer from output it has not seen yet.
    """
    if m := _FINAL_VAR_TAG.search(response):
        return TextFinal(var=m.group(1))
    if m := _FINAL_TAG.search(response) or _FINAL_TAG_TO_END.search(response):
        value = m.group(1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return TextFinal(value=value)
    return None


def answer_in(response: str) -> str | None:
    """What a root reply offers as an answer when the run ends before FINAL: a text FINAL's
    value, else the reply itself when it holds no code (code that never ran is no answer)."""
    tag = text_final(response)
    if tag is not None and tag.value is not None:
        return tag.value
    if code_blocks(response):
        return None
    return response.strip() or None


def replace_code_block(response: str, index: int, code: str) -> str:
    """The response with its `index`-th (1-based) code block's body replaced by `code`."""
    matches = list(_CODE_BLOCK.finditer(response))
    if not 1 <= index <= len(matches):
        raise ValueError(f"the response has no code block {index}")
    m = matches[index - 1]
    body = code if code.endswith("\n") else code + "\n"
    return response[: m.start(1)] + body + response[m.end(1) :]


def is_expression(text: str) -> bool:
    """Text that is a Python expression other than a literal (names, calls, +, ...): a set or
    list of constants is written out, not computed."""
    try:
        ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return False
    return not is_literal(text)
