"""Reading knowledge documents: which reader reads which file (`extract`), and the builtin readers.

`--document-reader` (or `document_reader:` in .labtax.yaml's generate section): `auto` (default)
uses docling when it is installed (the optional extra, sdg/docling_reader.py) and the builtin
readers otherwise; `docling` requires it; `builtin` never uses it. Through docling: HTML, DOCX, and
PDF when docling's layout models are on disk (else pypdf). Markdown and text are always read as they
are (docling's Markdown is their own). The builtin readers, from the standard library and pypdf:

  Markdown, text  UTF-8 (undecodable bytes replaced), as written.
  HTML  headings as `#` lines, paragraphs and list items as paragraphs, `<table>` as a Markdown
        table; script, style and head content dropped.
  DOCX  word/document.xml: each paragraph a paragraph (a Heading style as `#`), each table a Markdown
        table, in document order.
  PDF   pypdf's text of every page (tables come out as lines of cells).
Which reader read each document is in the leaf's stats and the manifest (`document_readers`).
"""

from __future__ import annotations

import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from xml.etree import ElementTree

from labtax.errors import UsageError
from labtax.sdg import docling_reader

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cells as a Markdown table, the first row the header ('' for no rows)."""
    rows = [[" ".join(c.split()).replace("|", "\\|") for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


class _Html(HTMLParser):
    BLOCKS: ClassVar[set[str]] = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.text: list[str] = []
        self.skip = 0
        self.heading = 0
        self.table: list[list[str]] | None = None
        self.cell: list[str] | None = None

    def _flush(self) -> None:
        text = " ".join("".join(self.text).split())
        if text:
            self.blocks.append(("#" * self.heading + " " if self.heading else "") + text)
        self.text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "noscript"):
            self.skip += 1
        elif tag == "table":
            self._flush()
            self.table = []
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = []
        elif tag in self.BLOCKS and self.cell is None:
            self._flush()
            self.heading = int(tag[1]) if re.fullmatch(r"h[1-6]", tag) else 0

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "noscript"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("td", "th") and self.table is not None and self.cell is not None:
            if not self.table:
                self.table.append([])
            self.table[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table" and self.table is not None:
            md = markdown_table(self.table)
            if md:
                self.blocks.append(md)
            self.table = None
        elif tag in self.BLOCKS and self.cell is None:
            self._flush()
            self.heading = 0

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        (self.cell if self.cell is not None else self.text).append(data)


def read_html(data: bytes) -> str:
    parser = _Html()
    parser.feed(data.decode("utf-8", errors="replace"))
    parser.close()
    parser._flush()
    return "\n\n".join(parser.blocks)


def read_docx(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            root = ElementTree.fromstring(z.read("word/document.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError) as exc:
        raise UsageError(f"cannot read DOCX {path.name}: {exc}") from None
    body = root.find(f"{_W}body")
    blocks: list[str] = []
    for el in list(body) if body is not None else []:
        if el.tag == f"{_W}p":
            text = "".join(t.text or "" for t in el.iter(f"{_W}t")).strip()
            style = el.find(f"{_W}pPr/{_W}pStyle")
            level = re.search(r"Heading(\d)", style.get(f"{_W}val", "") if style is not None else "")
            if text:
                blocks.append(f"{'#' * int(level.group(1))} {text}" if level else text)
        elif el.tag == f"{_W}tbl":
            rows = [["".join(t.text or "" for t in tc.iter(f"{_W}t")) for tc in tr.iter(f"{_W}tc")]
                    for tr in el.iter(f"{_W}tr")]
            md = markdown_table(rows)
            if md:
                blocks.append(md)
    return "\n\n".join(blocks)


READERS = ("auto", "docling", "builtin")
# Markdown and text are read as they are, whatever the reader: Markdown is what docling would turn
# them into, and its round trip only re-renders them (tables re-padded, characters escaped).
DOCLING_SUFFIXES = (".html", ".htm", ".docx", ".pdf")


def resolve_reader(reader: str) -> str:
    """"docling" or "builtin" for a --document-reader setting; "docling" when it is not installed is
    a usage error (auto falls back to the builtin readers)."""
    if reader not in READERS:
        raise UsageError(f"--document-reader must be one of {', '.join(READERS)}, got {reader!r}")
    if reader == "builtin":
        return "builtin"
    if docling_reader.installed():
        return "docling"
    if reader == "docling":
        raise UsageError("--document-reader docling: docling is not installed",
                         hint="pip install 'labtax[docling]', or use --document-reader auto")
    return "builtin"


def reader_identity(reader: str) -> str:
    """What the text of a document depends on besides its bytes, for the memo and the manifest."""
    return docling_reader.identity() if resolve_reader(reader) == "docling" else "builtin"


def read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    except (PdfReadError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read PDF {path.name}: {exc}") from None


def extract(path: Path, reader: str = "auto") -> tuple[str, str]:
    """(text, the reader that made it) of one document: HTML, DOCX and PDF through docling when
    `reader` resolves to it (a PDF only with local layout models), else, or when docling fails on
    the file, the builtin readers (HTML and DOCX above, PDF with pypdf). Markdown, text and other
    files: UTF-8 text."""
    suffix = path.suffix.lower()
    if suffix in DOCLING_SUFFIXES and resolve_reader(reader) == "docling":
        try:
            return docling_reader.read(path)
        except (docling_reader.ModelsMissing, UsageError):
            # No local PDF models, or a file docling cannot load (a DOCX without its package parts):
            # the builtin reader below reads it, and the label says so.
            pass
    if suffix == ".pdf":
        return read_pdf(path), "pypdf"
    if suffix in (".html", ".htm"):
        return read_html(path.read_bytes()), "builtin-html"
    if suffix == ".docx":
        return read_docx(path), "builtin-docx"
    return path.read_bytes().decode("utf-8", errors="replace"), "text"
