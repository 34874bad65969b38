"""The human format: `path:line:col: severity [rule] message`, like a compiler."""

from __future__ import annotations

from labtax.report.context import ReportContext, counts
from labtax.taxonomy.model import Finding
from labtax.util.quoting import one_line, quote_path


def format_finding(finding: Finding, ctx: ReportContext) -> str:
    line = (f"{quote_path(ctx.shown(finding))}:{finding.line}:{finding.col}: {finding.severity} [{finding.rule}] "
            f"{one_line(finding.message)}")
    if finding.yaml_path:
        line += f" (at {one_line(finding.yaml_path)})"
    if finding.hint:
        line += f"\n    hint: {one_line(finding.hint)}"
    return line


def summary(findings: list[Finding], ctx: ReportContext) -> str:
    errors, warnings = counts(findings)
    files = len({f.path for f in findings})
    if not findings:
        return f"labtax validate: {ctx.files_checked} file(s) checked, no problems"
    return (f"labtax validate: {ctx.files_checked} file(s) checked, {errors} error(s), {warnings} warning(s) "
            f"in {files} file(s)")


def render(findings: list[Finding], ctx: ReportContext) -> str:
    lines = [format_finding(f, ctx) for f in findings]
    lines.append(summary(findings, ctx))
    return "\n".join(lines) + "\n"
