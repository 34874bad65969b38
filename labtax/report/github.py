"""GitHub Actions: workflow-command annotations plus a Markdown table in the job summary.

GitHub shows at most 10 error and 10 warning annotations per step; the rest are printed as plain
lines and counted in a notice; `markdown` is the table of every finding for $GITHUB_STEP_SUMMARY
(written by `labtax.report.render`, not here: renderers only return text).
"""

from __future__ import annotations

from labtax.report.context import ReportContext, counts
from labtax.report.text import format_finding, summary
from labtax.taxonomy.model import Finding
from labtax.util.quoting import escape_bidi

ANNOTATION_LIMIT = 10
SUMMARY_ROWS = 500  # the summary file is capped at 1 MiB per step; keep far below


def _data(text: str) -> str:
    # Bidirectional controls escaped as git prints them: GitHub would show the text after one reversed.
    return escape_bidi(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding, ctx: ReportContext) -> str:
    message = finding.message + (f" (at {finding.yaml_path})" if finding.yaml_path else "")
    if finding.hint:
        message += f"\nhint: {finding.hint}"
    return (f"::{finding.severity} file={_prop(ctx.in_repo(finding))},line={finding.line},col={finding.col},"
            f"title={_prop('labtax ' + finding.rule)}::{_data(message)}")


def _cell(text: str) -> str:
    return escape_bidi(text.replace("|", "\\|").replace("\n", " "))


def markdown(findings: list[Finding], ctx: ReportContext) -> str:
    errors, warnings = counts(findings)
    out = [f"### labtax validate: {errors} error(s), {warnings} warning(s) in {ctx.files_checked} file(s)", ""]
    if not findings:
        out.append("No problems found.")
        return "\n".join(out) + "\n"
    out += ["| | File | Line | Rule | Message |", "|---|---|---|---|---|"]
    for f in findings[:SUMMARY_ROWS]:
        icon = "❌" if f.severity == "error" else "⚠️"
        message = f.message + (f" — hint: {f.hint}" if f.hint else "")
        out.append(f"| {icon} | `{_cell(ctx.in_repo(f))}` | {f.line}:{f.col} | `{f.rule}` | {_cell(message)} |")
    if len(findings) > SUMMARY_ROWS:
        out.append(f"\n… and {len(findings) - SUMMARY_ROWS} more (run `labtax validate` locally).")
    return "\n".join(out) + "\n"


def render(findings: list[Finding], ctx: ReportContext) -> str:
    lines: list[str] = []
    shown = {"error": 0, "warning": 0}
    rest: list[Finding] = []
    for f in findings:
        if shown[f.severity] < ANNOTATION_LIMIT:
            shown[f.severity] += 1
            lines.append(annotation(f, ctx))
        else:
            rest.append(f)
    if rest:
        errors, warnings = counts(rest)
        lines.append(f"::notice title=labtax validate::{errors} more error(s) and {warnings} more warning(s) "
                     "not annotated (GitHub shows 10 of each); all are listed below and in the job summary")
        lines += [format_finding(f, ctx) for f in rest]
    lines.append(summary(findings, ctx))
    return "\n".join(lines) + "\n"
