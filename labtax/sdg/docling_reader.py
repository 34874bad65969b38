"""docling as the knowledge-document reader (the optional extra: `pip install 'labtax[docling]'`).

What runs offline, with no model weights: HTML and DOCX go through docling's "simple" pipeline (its
own parsers, tables exported as Markdown tables; docling-slim's format-html/format-docx extras are
enough, with the torch labtax already has). Markdown is not converted (readers.py). PDF is different: docling's PDF
pipeline finds the page layout and the tables with two models (layout, TableFormer) that it would
fetch from a model hub, which labtax never does at run time. They are used when they are already on
disk, in `$DOCLING_ARTIFACTS_PATH` or docling's own download folder `~/.cache/docling/models` (what
`docling-tools models download` fills: for docling 2.143 the folders
`docling-project--docling-layout-heron` and `docling-project--docling-models`); OCR stays off (a
digital PDF has its text). A model folder without them makes docling fail, not download. Without them a
PDF is read by pypdf: docling's model-free PDF pipeline was measured to give one paragraph per
printed line and one per table cell, which chunks worse than pypdf's page text.

Converted text is cached under the labtax cache (`document-text/`), keyed by the file's bytes and
the reader (docling's version, the model folder), so planning and generation convert a file once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from labtax.errors import UsageError
from labtax.models import cache_dir
from labtax.util.atomic import atomic_write_text

ARTIFACTS_ENV = "DOCLING_ARTIFACTS_PATH"  # docling's own setting for its model folder


class ModelsMissing(Exception):
    """docling's PDF pipeline cannot run here (no local layout models, or the slim install)."""


def installed() -> bool:
    try:
        return importlib.util.find_spec("docling") is not None
    except (ImportError, ValueError):
        return False


def version() -> str:
    for dist in ("docling-slim", "docling"):  # docling 2.14x is a meta-package over docling-slim
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def artifacts_path() -> Path | None:
    """The folder of docling's downloaded models, when there is one (never downloaded by labtax)."""
    given = os.environ.get(ARTIFACTS_ENV, "").strip()
    folder = Path(given) if given else Path.home() / ".cache" / "docling" / "models"
    return folder if folder.is_dir() else None


def identity() -> str:
    """What docling output depends on here: its version and the model folder PDFs would use."""
    models = artifacts_path()
    return f"docling {version()}; pdf: " + (f"layout models in {models}" if models else "pypdf (no layout models)")


@lru_cache(maxsize=1)
def _simple_converter() -> Any:
    try:
        from docling.datamodel.base_models import InputFormat
        from docling.document_converter import DocumentConverter
    except ImportError as exc:  # docling's converter imports torch, which labtax[sdg] brings
        raise UsageError(f"docling cannot be imported: {exc}") from None

    return DocumentConverter(allowed_formats=[InputFormat.HTML, InputFormat.DOCX])


@lru_cache(maxsize=2)
def _pdf_converter(models: Path) -> Any:
    try:
        from docling.datamodel.base_models import InputFormat
        from docling.datamodel.pipeline_options import PdfPipelineOptions
        from docling.document_converter import DocumentConverter, PdfFormatOption
    except ImportError as exc:  # docling-slim without its PDF parts
        raise ModelsMissing(str(exc)) from None
    options = PdfPipelineOptions(artifacts_path=models, do_ocr=False, do_table_structure=True)
    return DocumentConverter(format_options={InputFormat.PDF: PdfFormatOption(pipeline_options=options)})


def _cache_file(kind: str, data: bytes) -> Path:
    digest = hashlib.sha256(f"labtax-docling/1\0{kind}\0{identity()}\0".encode() + data).hexdigest()
    return cache_dir() / "document-text" / digest[:2] / f"{digest}.md"


def _convert(converter: Any, path: Path) -> str:
    try:
        return str(converter.convert(str(path)).document.export_to_markdown())
    except (FileNotFoundError, ImportError, OSError) as exc:
        if path.suffix.lower() == ".pdf":
            raise ModelsMissing(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        raise UsageError(f"docling cannot read {path.name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - docling raises many types; one line for the user
        raise UsageError(f"docling cannot read {path.name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def read(path: Path) -> tuple[str, str]:
    """(Markdown text, reader label) of an HTML, DOCX or PDF file through docling; a PDF
    without local layout models raises ModelsMissing (the caller reads it with pypdf)."""
    pdf = path.suffix.lower() == ".pdf"
    models = artifacts_path() if pdf else None
    if pdf and models is None:
        raise ModelsMissing(f"no docling layout models on disk (${ARTIFACTS_ENV} or ~/.cache/docling/models)")
    data = path.read_bytes()
    label = "docling-pdf" if pdf else "docling"
    cached = _cache_file(label, data)
    try:
        return cached.read_text(encoding="utf-8"), label
    except OSError:
        pass
    text = _convert(_pdf_converter(models) if models is not None else _simple_converter(), path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cached, text)
    except OSError:
        pass  # a read-only cache only costs the next conversion
    return text, label
