"""One registry names every renderer; renderers return text and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.report import RENDERERS, formats, render_report, renderer
from labtax.report.context import ReportContext
from labtax.taxonomy.model import Finding


def test_every_named_renderer_exists() -> None:
    assert set(RENDERERS) == {"validate", "diff", "diff-generate", "eval"}
    assert formats("eval") == ("text", "json", "markdown") and formats("diff") == ("text", "json")
    for report, table in RENDERERS.items():
        for fmt in table:
            assert callable(renderer(report, fmt)), (report, fmt)


def test_the_github_renderer_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    finding = Finding("schema-required", "error", "knowledge/a/qna.yaml", 1, 1, "missing", "", None)
    text = render_report("validate", "github", [finding], ReportContext(root=tmp_path, files_checked=1))
    assert text.startswith("::error ") and not summary.exists()
