"""Reporters: render validation findings as text, JSON, GitHub annotations or SARIF 2.1.0."""

from __future__ import annotations

from labtax.report.context import ReportContext, counts
from labtax.taxonomy.model import Finding

FORMATS = ("text", "json", "github", "sarif")


def render(fmt: str, findings: list[Finding], ctx: ReportContext) -> str:
    """The whole report as one string (the github reporter also appends to $GITHUB_STEP_SUMMARY)."""
    if fmt == "json":
        from labtax.report import json_report as module
    elif fmt == "github":
        from labtax.report import github as module  # type: ignore[no-redef]
    elif fmt == "sarif":
        from labtax.report import sarif as module  # type: ignore[no-redef]
    else:
        from labtax.report import text as module  # type: ignore[no-redef]
    return module.render(findings, ctx)


__all__ = ["FORMATS", "ReportContext", "counts", "render"]
