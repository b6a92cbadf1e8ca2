"""Untrusted values on their way into markup: the only helpers the pages use for it.

Text from documents, models and imported traces is shown with st.text, st.code, st.json or in
dataframe cells, which never interpret it. These functions are for the few places where a value
must sit inside HTML or markdown (which is what alerts, captions and widget labels render), a
link, or a file name. Which one to use:

- `esc`: any text inside HTML we build (the document view).
- `md`: any text inside something that renders markdown: an alert's message, a caption, a
  widget label (a `![](http://...)` in a file name would load a remote image).
- `word`: a short name we show in a label or in markdown (a kind, a role, a limit or rule name).
- `safe_id`: an id that goes into a link or a file name (our ids are hex), or nothing.
- `file_name`: the base name of an uploaded file, as a path in a private temporary folder.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

_NOT_WORD = re.compile(r"[^\w \-·›↔?]")
"""Everything markdown could act on is outside this set: no brackets, parentheses, '!', '*',
'`', '<', '#', '|', and no '.', ':', '/', '@', so that no autolink can form either. The marks
'·', '›', '↔' and '?' are kept for the labels we compose from such words."""
_ID = re.compile(r"[0-9A-Za-z_-]{1,80}")
_FILE_NAME = re.compile(r"[^\w.-]")


def esc(text: Any) -> str:
    """`text` with &, <, >, " and ' escaped: inert inside HTML and markdown."""
    return html.escape(str(text), quote=True)


_MARKDOWN = re.compile(r"([\\`*_\[\]()<>!#|~$:])")
"""The marks that start an image, a link or autolink (`:`), HTML, code, emphasis, a heading, a
quote, a table, LaTeX or a Streamlit directive (`:red[...]`, `:material/...:`)."""


def md(text: Any) -> str:
    """`text` made literal for markdown: every mark above is backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def word(value: Any, limit: int = 60) -> str:
    """`value` cut to `limit` characters of letters, digits, spaces, '_' and '-' (and the marks
    '·›↔?'); '?' if nothing is left. For our own short names: in a stored or imported trace they
    can hold anything, and a label renders markdown."""
    return _NOT_WORD.sub("", str(value))[:limit] or "?"


def safe_id(value: Any) -> str | None:
    """The id if it is plain letters, digits, '-' and '_' (our ids are hex), else None: imported
    traces can carry anything, and an id is the only trace value that goes into a link."""
    text = str(value) if value is not None else ""
    return text if _ID.fullmatch(text) else None


def file_name(name: str, default: str) -> str:
    """The base name only, with anything but letters, digits, '.', '-' and '_' replaced."""
    return _FILE_NAME.sub("_", Path(name).name)[:100] or default
