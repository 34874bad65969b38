"""Knowledge documents through docling (the optional extra) and the builtin readers it falls back to:
real DOCX, HTML and PDF files holding a table, made here; which reader read each is on record."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_taxonomy import add_knowledge, manifest, prompts_of, run_cli, teacher_args
from test_sdg_readers import HTML
from test_sdg_readers import _docx as _xml_docx

from labtax.errors import UsageError
from labtax.sdg.readers import extract, resolve_reader

HAVE_DOCLING = importlib.util.find_spec("docling") is not None
needs_docling = pytest.mark.skipif(not HAVE_DOCLING, reason="docling is not installed (the optional extra: "
                                   "pip install 'labtax[docling]'; scripts/bootstrap.sh installs docling-slim's "
                                   "HTML and DOCX readers)")
ROWS = [["Moon", "Radius (km)"], ["Phobos", "11.3"], ["Deimos", "6.2"]]


def make_docx(path: Path) -> Path:
    """A DOCX as Word writes it (python-docx, when installed: docling brings it), else from its XML."""
    try:
        import docx
    except ImportError:
        return _xml_docx(path)
    document = docx.Document()
    document.add_heading("Moons of Mars", 1)
    document.add_paragraph("Mars has two moons.")
    table = document.add_table(rows=len(ROWS), cols=2)
    for r, row in enumerate(ROWS):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Both are small.")
    document.save(str(path))
    return path


def make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, "Mars has two small moons, Phobos and Deimos, both found by Asaph Hall in 1877.")
    pdf.ln(4)
    with pdf.table() as table:
        for row in ROWS:
            cells = table.row()
            for value in row:
                cells.cell(value)
    pdf.output(str(path))
    return path


def table_rows(text: str) -> list[list[str]]:
    """The cells of the Markdown table rows in `text` (separator rows left out), whatever the padding."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_builtin_readers_keep_tables_and_say_so(tmp_path: Path) -> None:
    html = tmp_path / "moons.html"
    html.write_bytes(HTML)
    text, reader = extract(make_docx(tmp_path / "moons.docx"), "builtin")
    assert reader == "builtin-docx" and table_rows(text) == ROWS and text.startswith("# Moons of Mars")
    text, reader = extract(html, "builtin")
    assert reader == "builtin-html" and table_rows(text) == ROWS
    text, reader = extract(make_pdf(tmp_path / "moons.pdf"), "builtin")
    assert reader == "pypdf" and "Asaph Hall" in text and "Phobos 11.3" in text
    (tmp_path / "notes.md").write_text("# Notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert extract(tmp_path / "notes.md", "auto") == ((tmp_path / "notes.md").read_text(), "text")


def test_without_docling_auto_is_builtin_and_docling_is_a_usage_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docling", None)  # not importable, as in an install without the extra
    assert resolve_reader("auto") == "builtin"
    assert extract(make_docx(tmp_path / "moons.docx"), "auto")[1] == "builtin-docx"
    with pytest.raises(UsageError, match="docling is not installed") as info:
        resolve_reader("docling")
    assert "labtax[docling]" in (info.value.hint or "")


@needs_docling
def test_docling_reads_docx_and_html_tables_as_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path / "cache"))
    html = tmp_path / "moons.html"
    html.write_bytes(HTML)
    for path in (make_docx(tmp_path / "moons.docx"), html):
        text, reader = extract(path, "auto")
        assert reader == "docling", path
        assert table_rows(text) == ROWS, text
        assert text.lstrip().startswith("#") and "Mars has two moons." in text
        # Converted once: the text is kept in the cache, keyed by the bytes and docling's version.
        assert extract(path, "docling") == (text, "docling")
    assert len(list((tmp_path / "cache" / "document-text").rglob("*.md"))) == 2


@needs_docling
def test_a_pdf_without_local_layout_models_is_read_by_pypdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labtax.sdg import docling_reader

    pdf = make_pdf(tmp_path / "moons.pdf")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.cache/docling/models
    monkeypatch.delenv("DOCLING_ARTIFACTS_PATH", raising=False)
    assert docling_reader.artifacts_path() is None
    assert "pypdf (no layout models)" in docling_reader.identity()
    text, reader = extract(pdf, "docling")
    assert reader == "pypdf" and "Phobos 11.3" in text
    # A model folder without the layout model: docling is asked, finds nothing, downloads nothing.
    empty = tmp_path / "models"
    empty.mkdir()
    monkeypatch.setenv("DOCLING_ARTIFACTS_PATH", str(empty))
    assert docling_reader.artifacts_path() == empty
    assert extract(pdf, "docling") == (text, "pypdf")


def _knowledge_with_files(repo: Any, tmp_path: Path) -> None:
    add_knowledge(repo, "knowledge/astro/moons")
    add_knowledge(repo, "knowledge/astro/notes")  # Markdown only: the same text whatever the reader
    folder = repo.root / ".documents" / "moons"
    (folder / "moons.md").unlink()
    make_docx(folder / "moons.docx")
    make_pdf(folder / "moons.pdf")
    qna = repo.root / "knowledge" / "astro" / "moons" / "qna.yaml"
    qna.write_text(qna.read_text().replace("    - '*.md'", "    - '*.docx'\n    - '*.pdf'"))
    repo.commit("knowledge with a DOCX and a PDF")


def _readers(out: Path) -> dict[str, dict[str, int]]:
    return {e["path"]: (e.get("generation") or {}).get("document_readers") for e in manifest(out)["leaves"]}


def test_the_manifest_names_the_reader_of_every_document(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _knowledge_with_files(git_repo, tmp_path)
    out = tmp_path / "out"
    args = ["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output", str(out)]
    code, text = run_cli([*args, "--document-reader", "builtin", *teacher_args(openai_server)])
    assert code == 0, text
    assert _readers(out)["knowledge/astro/moons/qna.yaml"] == {"builtin-docx": 1, "pypdf": 1}
    assert _readers(out)["knowledge/astro/notes/qna.yaml"] == {"text": 1}
    assert manifest(out)["settings"]["document_reader"] == "builtin"
    assert "documents read by builtin-docx 1, pypdf 1" in text
    assert any("| Phobos | 11.3 |" in p for p in prompts_of(openai_server))  # the DOCX table, as Markdown
    if not HAVE_DOCLING:
        code, text = run_cli([*args, "--document-reader", "docling", *teacher_args(openai_server)])
        assert code == 2 and "docling is not installed" in text and "Traceback" not in text
        return
    # docling installed: `auto` reads the DOCX through it, so that leaf's key changes and it is
    # generated again; the Markdown leaf reads the same and is reused.
    code, text = run_cli([*args, "--document-reader", "auto", *teacher_args(openai_server)])
    assert code == 0, text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert entries["knowledge/astro/moons/qna.yaml"]["status"] == "generated"
    assert entries["knowledge/astro/notes/qna.yaml"]["status"] == "reused"
    assert _readers(out)["knowledge/astro/moons/qna.yaml"] == {"docling": 1, "pypdf": 1}
    assert manifest(out)["settings"]["document_reader"].startswith("docling ")
