"""Ingest: every format from real small files written by the tests, broken ones included."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import docx
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from rlm_core import readers
from rlm_core.context import text_of
from rlm_core.ingest import context_from_files, load_context
from rlm_core.readers import IngestError, file_text, file_value

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def make_pdf(pages: list[str | None]) -> bytes:
    """A minimal valid PDF; None makes a page with no text (like a scanned image)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" if text is not None else ""
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        content_ref = len(objects)
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {{font}} 0 R >> >> /Contents {content_ref} 0 R >>"
        )
        kids.append(len(objects))
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    font = len(objects)
    objects[1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    )
    return pdf_file([body.replace("{font}", str(font)).encode() for body in objects])


def pdf_file(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1, the first the catalog) with its xref table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def make_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("Quarterly report")
    document.add_paragraph("Revenue grew in the north.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "region", "revenue"
    table.cell(1, 0).text, table.cell(1, 1).text = "north", "1200"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---- text and encodings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "note"),
    [
        ("Grüße aus Köln".encode(), None),
        (b"\xef\xbb\xbf" + "Grüße aus Köln".encode(), None),
        ("Grüße aus Köln".encode("utf-16"), "UTF-16"),
        (b"\xfe\xff" + "Grüße aus Köln".encode("utf-16-be"), "UTF-16"),
        ("Grüße aus Köln".encode("latin-1"), "Latin-1"),
    ],
)
def test_text_encodings_are_detected_and_reported(data: bytes, note: str | None) -> None:
    text, got = file_text("notes.txt", data)
    assert text == "Grüße aus Köln"
    assert (got is None) if note is None else (note in str(got))


def test_empty_binary_and_image_files_are_refused_with_the_reason() -> None:
    with pytest.raises(IngestError, match="empty"):
        file_text("a.txt", b"")
    with pytest.raises(IngestError, match="binary"):
        file_text("a.bin", bytes(range(256)) * 10)
    with pytest.raises(IngestError, match="image"):
        file_text("scan.png", PNG)
    with pytest.raises(IngestError, match="no text"):
        file_text("blank.md", b"  \n\n\t ")


def test_html_keeps_only_visible_text() -> None:
    page = (
        b"<html><head><title>T</title><style>p{}</style></head><body><h1>Hello</h1>"
        b"<script>alert(1)</script><p>World &amp; more</p></body></html>"
    )
    text, _ = file_text("page.html", page)
    assert text == "Hello\nWorld & more"


# ---- PDF and DOCX ------------------------------------------------------------------------


def test_pdf_text_keeps_page_markers() -> None:
    text, _ = file_text("report.pdf", make_pdf(["First page text", "Second page text"]))
    assert "[page 1]\nFirst page text" in text
    assert "[page 2]\nSecond page text" in text


def test_pdf_without_text_and_broken_pdf_say_why() -> None:
    with pytest.raises(IngestError, match="no text layer"):
        file_text("scan.pdf", make_pdf([None, None]))
    with pytest.raises(IngestError, match="not a readable PDF"):
        file_text("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")


def test_docx_paragraphs_and_tables_and_a_broken_docx() -> None:
    text, _ = file_text("report.docx", make_docx())
    assert "Quarterly report\nRevenue grew in the north." in text
    assert "north | 1200" in text
    with pytest.raises(IngestError, match="not a readable DOCX"):
        file_text("broken.docx", b"PK\x03\x04 this is not a zip")


# ---- CSV and JSON ------------------------------------------------------------------------


def test_small_csv_and_json_keep_their_structure() -> None:
    rows, note = file_value("t.csv", b"id,label\n1,billing\n2,returns\n")
    assert rows == [{"id": "1", "label": "billing"}, {"id": "2", "label": "returns"}]
    assert "2 records" in str(note)
    value, _ = file_value("d.json", json.dumps({"users": [1, 2]}).encode())
    assert value == {"users": [1, 2]}
    one = context_from_files([("t.tsv", b"a\tb\nx\ty\n")])
    assert one.value == [{"a": "x", "b": "y"}]
    # one size for every context: the length of its text, the parts joined (rlm_core.context)
    assert one.chars == len(text_of(one.value)) == len(str({"a": "x", "b": "y"}))


def test_broken_or_large_csv_and_json_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    value, note = file_value("d.json", b'{"a": 1,,}')
    assert value == '{"a": 1,,}' and "not valid JSON" in str(note)
    value, note = file_value("t.csv", b"a,b\n1,2,3\n4\n")
    assert isinstance(value, str) and "differing numbers of fields" in str(note)
    monkeypatch.setattr(readers, "STRUCTURED_MAX_BYTES", 10)
    value, note = file_value("d.json", b'{"a": [1, 2, 3, 4]}')
    assert isinstance(value, str) and "kept as text" in str(note)


# ---- sets of files, ZIP archives and folders ---------------------------------------------


def test_zip_becomes_a_dict_and_says_what_was_skipped() -> None:
    archive = make_zip(
        {
            "src/app.py": b"def main():\n    return 42\n",
            "src/__pycache__/app.cpython-311.pyc": b"\x00\x01",
            "docs/readme.md": b"# Readme\n",
            "img/logo.png": PNG,
            "tools/blob.bin": bytes(range(256)),
            "inner.zip": make_zip({"x.txt": b"x"}),
            "src/": b"",
        }
    )
    ctx = context_from_files([("code.zip", archive)])
    assert ctx.value == {
        "src/app.py": "def main():\n    return 42\n",
        "docs/readme.md": "# Readme\n",
    }
    reasons = dict(ctx.skipped)
    assert "image" in reasons["img/logo.png"]
    assert "binary" in reasons["tools/blob.bin"]
    assert "ZIP inside" in reasons["inner.zip"]
    assert any(n.startswith("skipped img/logo.png") for n in ctx.notes)


def test_broken_or_empty_zip_is_refused() -> None:
    with pytest.raises(IngestError, match="not a readable ZIP"):
        context_from_files([("code.zip", b"PK\x03\x04 broken")])
    with pytest.raises(IngestError, match="no text could be read"):
        context_from_files([("pics.zip", make_zip({"a.png": PNG}))])


def test_several_files_skip_binaries_and_expand_zips() -> None:
    ctx = context_from_files(
        [("a.txt", b"alpha"), ("b.bin", bytes(range(256))), ("c.zip", make_zip({"d.md": b"delta"}))]
    )
    assert ctx.value == {"a.txt": "alpha", "c.zip/d.md": "delta"}
    assert [name for name, _ in ctx.skipped] == ["b.bin"]
    with pytest.raises(IngestError, match="no text could be read"):
        context_from_files([("x.bin", bytes(range(256))), ("y.png", PNG)])


def test_a_folder_becomes_a_dict_of_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "README.md").write_text("# Project\n")
    (root / ".git" / "config").write_text("[core]\n")
    (root / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"\x00")
    (root / "logo.png").write_bytes(PNG)
    (root / "empty.txt").write_bytes(b"")
    ctx = load_context([root])
    assert ctx.value == {"README.md": "# Project\n", "pkg/mod.py": "X = 1\n"}
    assert dict(ctx.skipped).keys() == {"logo.png", "empty.txt"}
    with pytest.raises(IngestError, match="no such file"):
        load_context([tmp_path / "missing"])


def test_big_files_stream_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "CHUNK", 1000)
    path = tmp_path / "big.txt"
    text = "Zeile mit Umlauten äöü und mehr.\n" * 2000
    path.write_text(text, encoding="utf-8")
    seen: list[float] = []
    ctx = load_context([path], lambda fraction, what: seen.append(fraction))
    assert ctx.value == text
    assert len(seen) > 50 and seen == sorted(seen) and seen[-1] <= 1.0
    # uploads arrive as memoryviews of the upload buffer: no copy of the bytes
    assert context_from_files([("big.txt", memoryview(path.read_bytes()))]).value == text
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(make_pdf(["Mapped page"]))
    assert "[page 1]\nMapped page" in load_context([pdf]).value


# ---- the Run page ------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_app")
def test_run_page_reads_a_zip_upload_and_lists_skipped_files() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.radio(key="ctx_source").set_value("Upload files").run()
    archive = make_zip({"a.py": b"A = 1\n", "b.md": b"# B\n", "c.png": PNG})
    at.get("file_uploader")[0].set_value(  # type: ignore[union-attr]
        [("code.zip", archive, "application/zip")]
    ).run()
    assert not at.exception
    captions = [c.value.replace("\\", "") for c in at.caption]  # names come escaped
    assert any("code.zip: 2 files" in c for c in captions)
    assert any(c.startswith("skipped c.png") for c in captions)
    at.text_input(key="question_").set_value("Where is A defined?").run()
    assert not at.button(key="run_button").disabled
