"""Every report labtax prints, rendered in one place and looked up by name.

`RENDERERS` names each (report, format) pair's renderer, a function that takes the report's data and
returns the text; nothing in a renderer writes a file. Reports and their data:

  validate       findings + ReportContext   text, json, github, sarif
  diff           a DiffResult               text, json
  diff-generate  a Plan or a RunResult      text, json
  eval           the eval report dict       text, json, markdown

Modules are imported on first use, so `labtax diff` loads only its own renderer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from labtax.report.context import ReportContext, counts
from labtax.report.github import markdown
from labtax.taxonomy.model import Finding

RENDERERS: dict[str, dict[str, str]] = {
    "validate": {"text": "text:render", "json": "json_report:render", "github": "github:render",
                 "sarif": "sarif:render"},
    "diff": {"text": "diff:render_text", "json": "diff:render_json"},
    "diff-generate": {"text": "diff_generate:render_text", "json": "diff_generate:render_json"},
    "eval": {"text": "eval:render_text", "json": "eval:render_json", "markdown": "eval:render_markdown"},
}
FORMATS = tuple(RENDERERS["validate"])  # validate's formats (the most used list)


def formats(report: str) -> tuple[str, ...]:
    return tuple(RENDERERS[report])


def renderer(report: str, fmt: str) -> Callable[..., str]:
    """The renderer of `report` in `fmt` (KeyError for a pair that does not exist)."""
    module, function = RENDERERS[report][fmt].split(":")
    return getattr(importlib.import_module(f"labtax.report.{module}"), function)  # type: ignore[no-any-return]


def render_report(report: str, fmt: str, data: Any, *extra: Any) -> str:
    return renderer(report, fmt)(data, *extra)


def append_step_summary(markdown: str) -> str | None:
    """Append to $GITHUB_STEP_SUMMARY when it is set; a GitHub warning line when that fails."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    except OSError as exc:
        return f"::warning title=labtax validate::cannot write the job summary: {exc.strerror}"
    return None


def render(fmt: str, findings: list[Finding], ctx: ReportContext) -> str:
    """validate's report as one string; with `github`, the findings table also goes to the job
    summary (the delivery step, kept out of the renderer)."""
    text = render_report("validate", fmt, findings, ctx)
    if fmt == "github":
        warning = append_step_summary(markdown(findings, ctx))
        if warning:
            text += warning + "\n"
    return text


__all__ = ["FORMATS", "RENDERERS", "ReportContext", "append_step_summary", "counts", "formats", "render",
           "render_report", "renderer"]
