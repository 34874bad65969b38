"""HTML and DOCX knowledge documents: text in order, headings, tables kept as Markdown."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from labtax.sdg.documents import chunk_text, read_document
from labtax.sdg.readers import markdown_table, read_docx, read_html

HTML = b"""<html><head><title>skip me</title><style>p {color: red}</style></head><body>
<h1>Moons</h1><p>Mars has two moons.</p><script>var x = 1;</script>
<ul><li>Phobos is the larger.</li><li>Deimos is the smaller.</li></ul>
<table><tr><th>Moon</th><th>Radius (km)</th></tr><tr><td>Phobos</td><td>11.3</td></tr>
<tr><td>Deimos</td><td>6.2</td></tr></table><p>The end &amp; more.</p></body></html>"""

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _docx(path: Path) -> Path:
    def p(text: str, style: str = "") -> str:
        ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f"<w:p>{ppr}<w:r><w:t>{text}</w:t></w:r></w:p>"

    def row(*cells: str) -> str:
        return "<w:tr>" + "".join(f"<w:tc>{p(c)}</w:tc>" for c in cells) + "</w:tr>"

    body = (p("Moons of Mars", "Heading1") + p("Mars has two moons.")
            + f"<w:tbl>{row('Moon', 'Radius (km)')}{row('Phobos', '11.3')}{row('Deimos', '6.2')}</w:tbl>"
            + p("Both are small."))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>')
    return path


TABLE = "| Moon | Radius (km) |\n|---|---|\n| Phobos | 11.3 |\n| Deimos | 6.2 |"


def test_html_keeps_order_headings_and_tables() -> None:
    text = read_html(HTML)
    assert text == ("# Moons\n\nMars has two moons.\n\nPhobos is the larger.\n\nDeimos is the smaller.\n\n"
                    f"{TABLE}\n\nThe end & more.")
    assert "skip me" not in text and "var x" not in text


def test_docx_paragraphs_headings_and_tables(tmp_path: Path) -> None:
    path = _docx(tmp_path / "moons.docx")
    assert read_docx(path) == f"# Moons of Mars\n\nMars has two moons.\n\n{TABLE}\n\nBoth are small."
    # read_document dispatches by suffix; a table stays whole within a chunk when it fits.
    try:
        import docling  # noqa: F401
    except ImportError:
        assert read_document(path) == read_docx(path)
    chunks = chunk_text(read_document(path), 400)
    assert any(TABLE in c for c, _ in chunks)


def test_a_broken_docx_is_one_line(tmp_path: Path) -> None:
    from labtax.errors import UsageError

    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="cannot read DOCX bad.docx"):
        read_docx(bad)


def test_markdown_table_pads_and_escapes() -> None:
    assert markdown_table([["a", "b|c"], ["1"]]) == "| a | b\\|c |\n|---|---|\n| 1 |  |"
    assert markdown_table([[" ", ""]]) == ""
