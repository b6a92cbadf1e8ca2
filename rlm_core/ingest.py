"""Files, folders and ZIP archives -> a context: one file gives a str (or, for a small CSV/JSON,
its records), several files a dict {path: text}. How one file becomes text is readers.py.
Files that cannot become text are skipped with the reason, or refused when given alone.
"""

from __future__ import annotations

import contextlib
import mmap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_core.archive import TooLarge, Unreadable, member_bytes
from rlm_core.context import size_of
from rlm_core.readers import (
    Data,
    IngestError,
    Progress,
    file_text,
    file_value,
    no_progress,
    stream,
)

MAX_BYTES = 1024**3
NOTES_SHOWN = 20
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "__MACOSX"})


@dataclass
class Context:
    value: Any
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file of a folder, ZIP or upload set that was left out."""

    @property
    def chars(self) -> int:
        return size_of(self.value)


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

    return _assemble(sources(), total, single, progress or no_progress)


def context_from_files(files: list[tuple[str, Data]], progress: Progress | None = None) -> Context:
    """Uploaded files (name, bytes); memoryviews (`UploadedFile.getbuffer()`) avoid a copy."""
    if not files:
        raise IngestError("no file given")
    total = sum(len(data) for _, data in files)
    return _assemble(iter(files), total, len(files) == 1, progress or no_progress)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in rel.parts):
            continue  # VCS data, caches and editor state are not the code base
        if path.is_file():
            yield rel.as_posix(), path


@dataclass
class Allowance:
    """What the context may still take of the 1 GB cap: one for all the files, folders and ZIP
    members of an ingest; a ZIP member counts what it unpacks to, not what it declares."""

    left: int = field(default_factory=lambda: MAX_BYTES)

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise IngestError(f"{what}: the context would be larger than 1 GB in all")
        self.left -= size


def _assemble(
    sources: Iterator[tuple[str, Data]], total: int, single: bool, progress: Progress
) -> Context:
    """The context of every path: uploads, folders and the CLI's files all come through here,
    so the 1 GB cap holds on every path."""
    if total > MAX_BYTES:
        raise IngestError(f"the files are larger than 1 GB in all ({total:,} bytes)")
    allowance = Allowance()
    texts: dict[str, str] = {}
    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    done = 0
    for name, data in sources:
        progress(done / max(total, 1), name)
        size = len(data)
        if _is_zip(name, data):
            if single:
                return _from_zip(name, data, progress, allowance)
            try:
                inner = _from_zip(name, data, no_progress, allowance)
            except IngestError as exc:
                skipped.append((name, _reason(name, exc)))
            else:
                texts.update({f"{name}/{k}": v for k, v in inner.value.items()})
                notes += [n for n in inner.notes if not n.startswith("skipped ")]
                skipped += [(f"{name}/{k}", r) for k, r in inner.skipped]
            done += size
            continue
        allowance.take(size, name)
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


def _from_zip(name: str, data: Data, progress: Progress, allowance: Allowance) -> Context:
    with stream(data) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as exc:
            raise IngestError(f"{name}: not a readable ZIP archive ({exc})") from exc
        with archive:
            return _members(name, f, archive, progress, allowance)


def _members(
    name: str, f: Any, archive: zipfile.ZipFile, progress: Progress, allowance: Allowance
) -> Context:
    members = [i for i in archive.infolist() if not i.is_dir()]
    unpacked = sum(i.file_size for i in members)
    if unpacked > allowance.left:
        raise IngestError(f"{name}: unpacks to more than 1 GB ({unpacked:,} bytes declared)")
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
        if path.lower().endswith(".zip"):
            skipped.append((path, "a ZIP inside the ZIP; unpack it first"))
            continue
        try:
            # counted on what it unpacks to: its declared size proves nothing
            member = member_bytes(f, info, allowance.left)
        except TooLarge as exc:
            raise IngestError(f"{name}: {path} {exc}; the archive was not loaded") from exc
        except Unreadable as exc:
            skipped.append((path, str(exc)))
            continue
        allowance.take(len(member), f"{name}/{path}")
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
