"""Ingest within bounds: ZIP bombs of every codec, deep JSON, PDF filter bombs and huge page
counts end with one clear line (or a note), the 1 GB cap holds on every path, and the CLI's
memory-mapped files read as DOCX and ZIP."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from test_ingest import make_docx, make_zip, pdf_file

from rlm_core import ingest, readers
from rlm_core.ingest import context_from_files, load_context
from rlm_core.readers import IngestError, file_text, file_value

BOMB = b"\0" * (50 << 20)


def raw(method: int, data: bytes) -> bytes:
    """`data` compressed as a ZIP member of this method stores it."""
    if method == zipfile.ZIP_BZIP2:
        return bz2.compress(data)
    if method == zipfile.ZIP_LZMA:
        lzma1 = {"id": lzma.FILTER_LZMA1}
        props = lzma._encode_filter_properties(lzma1)  # type: ignore[attr-defined]
        packed = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[lzma1])
        return struct.pack("<BBH", 9, 4, len(props)) + props + packed
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return squeeze.compress(data) + squeeze.flush()


def lying_zip(method: int, packed: bytes, declared: int, extra: dict[str, bytes]) -> bytes:
    """A ZIP whose first member declares `declared` bytes but inflates to what `packed` holds;
    then honest members."""
    entries = [("bomb.txt", method, packed, declared, 0)]
    entries += [(n, zipfile.ZIP_STORED, d, len(d), zlib.crc32(d)) for n, d in extra.items()]
    out, central = bytearray(), bytearray()
    for name, how, body, size, crc in entries:
        # version, flags, method, time, date, CRC, packed size, size, name length, extra length
        fields = struct.pack("<HHHHHIIIHH", 20, 0, how, 0, 0, crc, len(body), size, len(name), 0)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields
        central += struct.pack("<HHHII", 0, 0, 0, 0, len(out)) + name.encode()
        out += b"PK\x03\x04" + fields + name.encode() + body
    count = len(entries)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + end)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_a_zip_bomb_is_stopped_by_the_bytes_it_produces(method: int) -> None:
    archive = lying_zip(method, raw(method, BOMB), 1024, {"notes.txt": b"the real text"})
    assert len(archive) < 60_000  # 50 MB of zeros, declared as 1 KB
    tracemalloc.start()
    try:
        ctx = context_from_files([("upload.zip", archive)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ctx.value == {"notes.txt": "the real text"}
    assert ctx.skipped[0][0] == "bomb.txt" and "more than the 1,024" in ctx.skipped[0][1]
    assert peak < 8 << 20  # zipfile inflated all 50 MB at once for BZIP2 and LZMA


def test_json_nested_1000_deep_is_kept_as_text_with_one_line() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    value, note = file_value("deep.json", deep)
    assert value == deep.decode()
    assert note == "deep.json: nested more than 100 levels deep, kept as text"


def flate(data: bytes) -> bytes:
    body = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(body), body)


def pdf(kids: list[int], contents: list[bytes]) -> bytes:
    """Pages (objects 3, 4, ... each with its content stream right after) listed as `kids`."""
    font = 3 + 2 * len(contents)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    objects.append(
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    )
    for i, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font)
        )
        objects.append(content)
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_file(objects)


def text_stream(text: bytes) -> bytes:
    content = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)


def test_a_pdf_flatedecode_bomb_leaves_its_page_out_with_one_line() -> None:
    bomb = flate(b"BT /F1 12 Tf 72 720 Td (boom) Tj ET " + b" " * (100 << 20))
    document = pdf([3, 5], [text_stream(b"the first page"), bomb])
    text, note = file_text("bomb.pdf", document)
    assert "the first page" in text and "boom" not in text
    assert note is not None and "1 page(s) could not be read" in note and "\n" not in note
    with pytest.raises(IngestError, match="no page could be read"):
        file_text("only-bomb.pdf", pdf([3], [bomb]))


def test_a_100000_page_pdf_is_read_up_to_the_page_cap_with_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readers, "MAX_PDF_PAGES", 300)
    document = pdf([3] * 100_000, [text_stream(b"same page")])
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    text, note = file_text("huge.pdf", document, lambda f, what: seen.append((f, what)))
    assert time.monotonic() - started < 20
    assert text.count("same page") == 300
    assert note == "huge.pdf: only its first 300 of 100,000 pages were read"
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and len(seen) >= 6
    assert seen[-1][1] == "huge.pdf: page 251 of 100,000"


def test_the_total_cap_holds_for_uploads_and_zip_contents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "MAX_BYTES", 1_000_000)
    part = b"some text " * 40_000  # 400 KB
    with pytest.raises(IngestError, match="larger than 1 GB in all"):
        context_from_files([(f"part{i}.txt", part) for i in range(3)])
    zipped = make_zip({"inner.txt": part + part})  # 800 KB unpacked, small packed
    with pytest.raises(IngestError, match=r"larger than 1 GB in all|more than 1 GB"):
        context_from_files([("a.zip", zipped), ("b.zip", zipped)])


def test_the_cli_path_reads_docx_and_zip_files(tmp_path: Path) -> None:
    (tmp_path / "report.docx").write_bytes(make_docx())
    (tmp_path / "code.zip").write_bytes(make_zip({"src/app.py": b"def main():\n    return 42\n"}))
    assert "Quarterly report" in load_context([tmp_path / "report.docx"]).value
    assert load_context([tmp_path / "code.zip"]).value == {
        "src/app.py": "def main():\n    return 42\n"
    }
    both = load_context([tmp_path / "report.docx", tmp_path / "code.zip"]).value
    assert set(both) == {"report.docx", "code.zip/src/app.py"}


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_zip_members_of_every_method_still_read(method: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        archive.writestr("a.txt", "alpha " * 10_000)
        archive.writestr("b/c.md", "# gamma")
    ctx = context_from_files([("packed.zip", buffer.getvalue())])
    assert ctx.value == {"a.txt": "alpha " * 10_000, "b/c.md": "# gamma"}
