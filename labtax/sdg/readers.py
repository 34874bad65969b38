"""Reading knowledge documents that are not plain text: HTML and DOCX, tables kept as Markdown.

With the optional `docling` package installed (`pip install 'labtax[docling]'`), DOCX and HTML go
through docling's converters for those formats, which need no model weights, and come out as its
Markdown. Without it (the default install), the readers below, from the standard library only:

  HTML  headings as `#` lines, paragraphs and list items as paragraphs, `<table>` as a Markdown
        table; script, style and head content dropped.
  DOCX  word/document.xml: each paragraph a paragraph (a Heading style as `#`), each table a Markdown
        table, in document order.

PDF stays with pypdf (documents.py): docling's PDF pipeline loads layout and table models from a
model hub at run time, which an offline run cannot do, so labtax does not use it.
"""

from __future__ import annotations

import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from xml.etree import ElementTree

from labtax.errors import UsageError

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


def read_with_docling(path: Path) -> str | None:
    """docling's Markdown for a DOCX or HTML file when docling is installed, else None."""
    try:
        from docling.document_converter import DocumentConverter
    except ImportError:
        return None
    try:
        return str(DocumentConverter().convert(str(path)).document.export_to_markdown())
    except Exception as exc:  # noqa: BLE001 - docling raises many types; one line for the user
        raise UsageError(f"docling cannot read {path.name}: {exc}") from None


def read_rich(path: Path) -> str | None:
    """The text of an HTML or DOCX document (docling first when installed); None for other files."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".docx"):
        return None
    via_docling = read_with_docling(path)
    if via_docling is not None:
        return via_docling
    return read_docx(path) if suffix == ".docx" else read_html(path.read_bytes())
