"""Files, folders and ZIP archives -> a context: one file gives a str (or, for a small CSV/JSON,
its records), several files a dict {path: text}. Text is decoded as UTF-8, UTF-16 (with BOM),
else Latin-1 (reported); PDF and DOCX go through pypdf and python-docx; HTML keeps visible text.
Files that cannot become text are skipped with the reason, or refused when given alone.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import mmap
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from rlm_core.context import size_of

MAX_BYTES = 1024**3
STRUCTURED_MAX_BYTES = 2 * 1024**2
"""A CSV or JSON file up to this size becomes records; a bigger one stays text."""
CHUNK = 16 * 1024**2
NOTES_SHOWN = 20
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "__MACOSX"})
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*", b"BM")
Data = bytes | bytearray | memoryview | mmap.mmap
Progress = Callable[[float, str], None]
"""Called with the fraction done (0..1) and what is being read."""


class IngestError(Exception):
    """A file cannot become context; the message says which file and why."""


@dataclass
class Context:
    value: Any
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file of a folder, ZIP or upload set that was left out."""

    @property
    def chars(self) -> int:
        return size_of(self.value)


def _no_progress(fraction: float, what: str) -> None:
    pass


# ---- entry points ------------------------------------------------------------------------


def load_context(paths: list[Path], progress: Progress | None = None) -> Context:
    """Files from disk, read through a memory map so a 1 GB file is never held twice."""
    if not paths:
        raise IngestError("no file given")
    entries: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            entries += [(f"{path.name}/{rel}", p) for rel, p in _walk(path)]
            if len(paths) == 1:
                entries = [(name.split("/", 1)[1], p) for name, p in entries]
        elif path.is_file():
            entries.append((path.name, path))
        else:
            raise IngestError(f"{path}: no such file or folder")
    if not entries:
        raise IngestError(f"{paths[0]}: the folder has no files")
    total = sum(p.stat().st_size for _, p in entries)
    if total > MAX_BYTES:
        raise IngestError(f"{paths[0]}: larger than 1 GB in all ({total:,} bytes)")
    single = len(entries) == 1 and not paths[0].is_dir()

    def sources() -> Iterator[tuple[str, Data]]:
        for name, path in entries:
            if path.stat().st_size == 0:
                yield name, b""
                continue
            with path.open("rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                try:
                    yield name, mm
                finally:
                    # a view kept alive by a traceback blocks close(); the map then goes with it
                    with contextlib.suppress(BufferError):
                        mm.close()

    return _assemble(sources(), total, single, progress or _no_progress)


def context_from_files(files: list[tuple[str, Data]], progress: Progress | None = None) -> Context:
    """Uploaded files (name, bytes); memoryviews (`UploadedFile.getbuffer()`) avoid a copy."""
    if not files:
        raise IngestError("no file given")
    total = sum(len(data) for _, data in files)
    return _assemble(iter(files), total, len(files) == 1, progress or _no_progress)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in rel.parts):
            continue  # VCS data, caches and editor state are not the code base
        if path.is_file():
            yield rel.as_posix(), path


def _assemble(
    sources: Iterator[tuple[str, Data]], total: int, single: bool, progress: Progress
) -> Context:
    texts: dict[str, str] = {}
    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    done = 0
    for name, data in sources:
        progress(done / max(total, 1), name)
        size = len(data)
        if _is_zip(name, data):
            if single:
                return _from_zip(name, data, progress)
            try:
                inner = _from_zip(name, data, _no_progress)
            except IngestError as exc:
                skipped.append((name, _reason(name, exc)))
            else:
                texts.update({f"{name}/{k}": v for k, v in inner.value.items()})
                notes += [n for n in inner.notes if not n.startswith("skipped ")]
                skipped += [(f"{name}/{k}", r) for k, r in inner.skipped]
            done += size
            continue
        if single:
            value, note = file_value(name, data, progress=_scaled(progress, done, size, total))
            return Context(value, [note] if note else [])
        try:
            text, note = file_text(name, data)
        except IngestError as exc:
            skipped.append((name, _reason(name, exc)))
        else:
            texts[_unique(name, texts)] = text
            if note:
                notes.append(note)
        done += size
    progress(1.0, "done")
    return _finish(texts, notes, skipped, "the files")


def _scaled(progress: Progress, done: int, size: int, total: int) -> Progress:
    return lambda f, what: progress((done + f * size) / max(total, 1), what)


def _reason(name: str, exc: IngestError) -> str:
    text = str(exc)
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def _finish(
    texts: dict[str, str], notes: list[str], skipped: list[tuple[str, str]], what: str
) -> Context:
    if not texts:
        why = "; ".join(f"{n}: {r}" for n, r in skipped[:5]) or "it is empty"
        raise IngestError(f"no text could be read from {what} ({why})")
    shown = [f"skipped {n}: {r}" for n, r in skipped[:NOTES_SHOWN]]
    if len(skipped) > NOTES_SHOWN:
        shown.append(f"... and {len(skipped) - NOTES_SHOWN} more files skipped")
    return Context(texts, notes + shown, skipped)


def _is_zip(name: str, data: Data) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix == ".zip" or (
        suffix not in (".docx", ".xlsx", ".pptx", ".odt", ".jar")
        and bytes(data[:4]) == b"PK\x03\x04"
    )


def _from_zip(name: str, data: Data, progress: Progress) -> Context:
    try:
        archive = zipfile.ZipFile(_stream(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{name}: not a readable ZIP archive ({exc})") from exc
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        unpacked = sum(i.file_size for i in members)
        if unpacked > MAX_BYTES:
            raise IngestError(f"{name}: unpacks to more than 1 GB ({unpacked:,} bytes)")
        texts: dict[str, str] = {}
        notes: list[str] = []
        skipped: list[tuple[str, str]] = []
        done = 0
        for info in members:
            path = info.filename
            progress(done / max(unpacked, 1), path)
            done += info.file_size
            parts = path.split("/")
            if any(p.startswith(".") or p in SKIPPED_DIRS for p in parts[:-1]) or parts[-1] in (
                ".DS_Store",
            ):
                continue
            if info.flag_bits & 0x1:
                skipped.append((path, "encrypted; it was not opened"))
                continue
            try:
                member = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
                skipped.append((path, f"could not be unpacked ({exc})"))
                continue
            if path.lower().endswith(".zip"):
                skipped.append((path, "a ZIP inside the ZIP; unpack it first"))
                continue
            try:
                text, note = file_text(path, member)
            except IngestError as exc:
                skipped.append((path, _reason(path, exc)))
                continue
            texts[path] = text
            if note:
                notes.append(note)
    progress(1.0, "done")
    return _finish(texts, notes, skipped, name)


def _unique(name: str, seen: dict[str, str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


# ---- one file ----------------------------------------------------------------------------


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
        text, note = _pdf_text(name, data), None
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
    if _valid_utf8(view[start:], name, progress or _no_progress):
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


def _stream(data: Data) -> Any:
    if isinstance(data, mmap.mmap):
        data.seek(0)
        return data  # a memory map is itself a seekable file: no copy
    return io.BytesIO(data)


def _pdf_text(name: str, data: Data) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PdfStreamError

    try:
        reader = PdfReader(_stream(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(f"{name}: not a readable PDF ({exc})") from exc
    if not any(p.strip() for p in pages):
        raise IngestError(
            f"{name}: the PDF has no text layer (scanned images?); it was not loaded (no OCR)"
        )
    # page markers let a slice say which page it came from
    return "\n\n".join(f"[page {i}]\n{text}" for i, text in enumerate(pages, 1))


def _docx_text(name: str, data: Data) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(_stream(data))
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
