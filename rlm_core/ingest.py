"""Uploaded or local files -> a context: one file gives a str, several a dict {name: text}.

Text is decoded as UTF-8, UTF-16 (with BOM), else Latin-1 (reported); PDF and DOCX go through
pypdf and python-docx; HTML keeps only visible text. Binary, empty or unreadable files raise
IngestError with a message saying what was wrong, so nothing is silently skipped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

MAX_BYTES = 1024**3


class IngestError(Exception):
    """A file cannot become context; the message says which file and why."""


@dataclass
class Context:
    value: Any
    notes: list[str] = field(default_factory=list)

    @property
    def chars(self) -> int:
        if isinstance(self.value, dict):
            return sum(len(v) for v in self.value.values())
        return len(self.value)


def load_context(paths: list[Path]) -> Context:
    files = []
    for path in paths:
        if not path.is_file():
            raise IngestError(f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise IngestError(f"{path}: larger than 1 GB")
        files.append((path.name, path.read_bytes()))
    return context_from_files(files)


def context_from_files(files: list[tuple[str, bytes]]) -> Context:
    if not files:
        raise IngestError("no file given")
    notes: list[str] = []
    texts: dict[str, str] = {}
    for name, data in files:
        text, note = file_text(name, data)
        texts[_unique(name, texts)] = text
        if note:
            notes.append(note)
    if len(texts) == 1:
        return Context(next(iter(texts.values())), notes)
    return Context(texts, notes)


def _unique(name: str, seen: dict[str, str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


def file_text(name: str, data: bytes) -> tuple[str, str | None]:
    """The text of one file and an optional note on how it was read."""
    if not data:
        raise IngestError(f"{name}: the file is empty")
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        text, note = _pdf_text(name, data), None
    elif suffix == ".docx":
        text, note = _docx_text(name, data), None
    else:
        text, note = decode_text(name, data)
        if suffix in (".html", ".htm") or text.lstrip()[:15].lower().startswith(
            ("<!doctype html", "<html")
        ):
            text = html_text(text)
    if not text.strip():
        raise IngestError(f"{name}: no text could be read from the file")
    return text, note


def decode_text(name: str, data: bytes) -> tuple[str, str | None]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), f"{name}: read as UTF-16"
    if _looks_binary(data[:8192]):
        raise IngestError(
            f"{name}: looks like a binary file (not text, PDF or DOCX); it was not loaded"
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return data.decode("latin-1"), f"{name}: not valid UTF-8, read as Latin-1"


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control > len(head) * 0.1


def _pdf_text(name: str, data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise IngestError(f"{name}: not a readable PDF ({exc})") from exc
    if not any(p.strip() for p in pages):
        raise IngestError(f"{name}: the PDF has no text layer (scanned images?); it was not loaded")
    # page markers let a slice say which page it came from
    return "\n\n".join(f"[page {i}]\n{text}" for i, text in enumerate(pages, 1))


def _docx_text(name: str, data: bytes) -> str:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise IngestError(f"{name}: not a readable DOCX file") from exc
    return "\n".join(p.text for p in document.paragraphs)


class _VisibleText(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
