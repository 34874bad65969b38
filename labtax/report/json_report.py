"""The machine format. Stable: fields are only ever added (documented in docs/validate.md;
the shape is described by labtax/schema/validate-report.json)."""

from __future__ import annotations

import json

from labtax import __version__
from labtax.report.context import ReportContext, counts
from labtax.taxonomy.model import Finding

FORMAT_ID = "labtax.validate/1"


def as_dict(findings: list[Finding], ctx: ReportContext) -> dict[str, object]:
    errors, warnings = counts(findings)
    return {
        "format": FORMAT_ID,
        "tool": {"name": "labtax", "version": __version__},
        "root": str(ctx.root),
        "files_checked": ctx.files_checked,
        "summary": {"errors": errors, "warnings": warnings, "files_with_findings": len({f.path for f in findings})},
        "findings": [
            {
                "path": f.path,
                "file": ctx.shown(f),
                "line": f.line,
                "col": f.col,
                "severity": f.severity,
                "rule": f.rule,
                "message": f.message,
                "yaml_path": f.yaml_path,
                "hint": f.hint,
            }
            for f in findings
        ],
    }


def render(findings: list[Finding], ctx: ReportContext) -> str:
    return json.dumps(as_dict(findings, ctx), indent=2, ensure_ascii=False) + "\n"
