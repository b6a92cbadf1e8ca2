"""One file's bytes -> text (or, for a small CSV / JSON file, its records): UTF-8, UTF-16 with a
BOM, else Latin-1 (reported); PDF and DOCX through pypdf and python-docx; HTML keeps its visible
text. A file that cannot become text raises IngestError saying why. Folders, ZIP archives and
sets of files are ingest.py's.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import mmap
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from rlm_core.archive import TooLarge, Unreadable, member_bytes
from rlm_core.types import nesting

STRUCTURED_MAX_BYTES = 2 * 1024**2
"""A CSV or JSON file up to this size becomes records; a bigger one stays text."""
MAX_JSON_DEPTH = 100
"""Deeper JSON stays text: the engine and the REPL walk a context recursively."""
MAX_PDF_PAGES = 5_000
"""Pages read from one PDF (about 5 s of pypdf for simple pages); the rest is left out, said so."""
MAX_TEXT_CHARS = 1024**3
CHUNK = 16 * 1024**2
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*", b"BM")
Data = bytes | bytearray | memoryview | mmap.mmap
Progress = Callable[[float, str], None]
"""Called with the fraction done (0..1) and what is being read."""


class IngestError(Exception):
    """A file cannot become context; the message says which file and why."""


def no_progress(fraction: float, what: str) -> None:
    pass


def file_value(name: str, data: Data, progress: Progress | None = None) -> tuple[Any, str | None]:
    """One file on its own: like `file_text`, but a small CSV or JSON file keeps its structure."""
    suffix = Path(name).suffix.lower()
    text, note = file_text(name, data, progress)
    if suffix not in (".csv", ".tsv", ".json") or len(data) > STRUCTURED_MAX_BYTES:
        if suffix in (".csv", ".tsv", ".json"):
            note = _join(
                note, f"{name}: large, kept as text (records over 2 MB are cheaper to slice)"
            )
        return text, note
    if suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return text, _join(
                note, f"{name}: not valid JSON ({exc.msg} at line {exc.lineno}), kept as text"
            )
        except RecursionError:
            value = None
        if value is None or nesting(value) > MAX_JSON_DEPTH:
            return text, _join(
                note, f"{name}: nested more than {MAX_JSON_DEPTH} levels deep, kept as text"
            )
        if isinstance(value, dict | list):
            return value, _join(note, f"{name}: parsed as JSON ({type(value).__name__})")
        return text, note
    rows = _csv_rows(text, "\t" if suffix == ".tsv" else None)
    if rows is None:
        return text, _join(note, f"{name}: rows have differing numbers of fields, kept as text")
    return rows, _join(note, f"{name}: parsed as {len(rows):,} records (list of dicts)")


def _join(a: str | None, b: str) -> str:
    return f"{a}; {b}" if a else b


def _csv_rows(text: str, delimiter: str | None) -> list[dict[str, str]] | None:
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=delimiter or ",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if delimiter == "\t" else csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error:
        return None
    rows = [r for r in rows if r]
    if len(rows) < 2 or len({len(r) for r in rows}) != 1:
        return None
    header = rows[0]
    if len(set(header)) != len(header):
        return None
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def file_text(name: str, data: Data, progress: Progress | None = None) -> tuple[str, str | None]:
    """The text of one file and an optional note on how it was read; IngestError says why not."""
    if not len(data):
        raise IngestError(f"{name}: the file is empty")
    suffix = Path(name).suffix.lower()
    head = bytes(data[:8192])
    if suffix == ".pdf" or head.startswith(b"%PDF-"):
        text, note = _pdf_text(name, data, progress or no_progress)
    elif suffix == ".docx":
        text, note = _docx_text(name, data), None
    elif head.startswith(IMAGE_MAGIC) or suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
        raise IngestError(f"{name}: an image; images are not read (no OCR), it was not loaded")
    else:
        text, note = decode_text(name, data, progress)
        if suffix in (".html", ".htm", ".xhtml") or text[:1000].lstrip()[:15].lower().startswith(
            ("<!doctype html", "<html")
        ):
            text = html_text(text)
    if not text or text.isspace():  # strip() would copy a 1 GB text once more
        raise IngestError(f"{name}: no text could be read from the file")
    return text, note


def decode_text(name: str, data: Data, progress: Progress | None = None) -> tuple[str, str | None]:
    view = memoryview(data)  # slices of a view share the file's memory instead of copying it
    head = bytes(view[:8192])
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return codecs.utf_16_decode(view, "replace", True)[0].lstrip(
            "\ufeff"
        ), f"{name}: read as UTF-16"
    if _looks_binary(head):
        raise IngestError(
            f"{name}: looks like a binary file (not text, PDF or DOCX); it was not loaded"
        )
    start = 3 if head.startswith(codecs.BOM_UTF8) else 0
    if _valid_utf8(view[start:], name, progress or no_progress):
        # validated chunk by chunk (for the progress bar), then decoded in one piece so the
        # text exists once rather than as chunks plus their join
        return codecs.utf_8_decode(view[start:], "strict", True)[0], None
    return codecs.latin_1_decode(view)[0], f"{name}: not valid UTF-8, read as Latin-1"


def _valid_utf8(view: memoryview, name: str, progress: Progress) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = len(view)
    for at in range(0, size, CHUNK):
        progress(at / max(size, 1), name)
        try:
            decoder.decode(view[at : at + CHUNK], final=at + CHUNK >= size)
        except UnicodeDecodeError:
            return False
    return True


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control > len(head) * 0.1


class _ViewFile(io.RawIOBase):
    """A read-only, seekable file over bytes, a memoryview or a memory map, without a copy.
    (A memory map is not a file to zipfile or python-docx on Python 3.11: no `seekable()`.)"""

    def __init__(self, data: Data) -> None:
        self._view, self._pos = memoryview(data).cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), len(self._view) - self._pos))
        buffer[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._view.release()  # a view left alive would keep the memory map from closing
        super().close()


def stream(data: Data) -> io.BufferedReader:
    """The bytes as a seekable binary file, without a copy; close it when done."""
    return io.BufferedReader(_ViewFile(data), buffer_size=1 << 16)


def _pdf_text(name: str, data: Data, progress: Progress) -> tuple[str, str | None]:
    """The text of each page, marked with its number; at most MAX_PDF_PAGES pages and
    MAX_TEXT_CHARS characters. A page pypdf cannot read (a compressed part that unpacks past
    pypdf's own limit, a broken content stream) is left out and named in the note."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    pages: list[str] = []
    failed: list[tuple[int, str]] = []
    with stream(data) as f:
        try:
            reader = PdfReader(f)
            total = len(reader.pages)
            for i in range(min(total, MAX_PDF_PAGES)):
                if i % 50 == 0:
                    progress(i / min(total, MAX_PDF_PAGES), f"{name}: page {i + 1:,} of {total:,}")
                try:
                    pages.append(reader.pages[i].extract_text() or "")
                except (PyPdfError, ValueError, KeyError, TypeError, RecursionError) as exc:
                    pages.append("")
                    failed.append((i + 1, " ".join(str(exc).split())[:120]))
                if sum(map(len, pages)) > MAX_TEXT_CHARS:
                    raise IngestError(f"{name}: its text is larger than 1 GB; it was not loaded")
        except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
            raise IngestError(f"{name}: not a readable PDF ({exc})") from exc
    if not any(p.strip() for p in pages):
        if failed:
            raise IngestError(
                f"{name}: no page could be read (page {failed[0][0]}: {failed[0][1]})"
            )
        raise IngestError(
            f"{name}: the PDF has no text layer (scanned images?); it was not loaded (no OCR)"
        )
    notes = []
    if total > MAX_PDF_PAGES:
        notes.append(f"only its first {MAX_PDF_PAGES:,} of {total:,} pages were read")
    if failed:
        shown = ", ".join(str(n) for n, _ in failed[:10]) + (" ..." if len(failed) > 10 else "")
        notes.append(
            f"{len(failed)} page(s) could not be read and were left out ({shown}: {failed[0][1]})"
        )
    # page markers let a slice say which page it came from
    text = "\n\n".join(f"[page {i}]\n{text}" for i, text in enumerate(pages, 1))
    return text, f"{name}: " + "; ".join(notes) if notes else None


def within_limit(name: str, f: Any, limit: int) -> None:
    """IngestError unless every member of the ZIP file `f` unpacks, in all, within `limit`
    bytes (counted on what decompression produces, nothing kept)."""
    with zipfile.ZipFile(f) as archive:
        left = limit
        for info in archive.infolist():
            try:
                member_bytes(f, info, left, keep=False)
            except (TooLarge, Unreadable) as exc:
                raise IngestError(f"{name}: {info.filename} {exc}; it was not loaded") from exc
            left -= info.file_size  # what it produced: member_bytes checked they are equal
    f.seek(0)


def _docx_text(name: str, data: Data) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    with stream(data) as f:
        try:
            # python-docx inflates its parts without a limit: measure them within one first
            within_limit(name, f, MAX_TEXT_CHARS)
            document = docx.Document(f)
        except (PackageNotFoundError, zipfile.BadZipFile, ValueError, KeyError, OSError) as exc:
            raise IngestError(f"{name}: not a readable DOCX file") from exc
    lines = [p.text for p in document.paragraphs]
    # tables are where reports keep their numbers; one row per line, cells separated by " | "
    for table in document.tables:
        lines.append("")
        lines += [" | ".join(cell.text for cell in row.cells) for row in table.rows]
    return "\n".join(lines)


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
