"""Line-level checks on a qna.yaml's text (the yamllint rules the public tools enforce as errors).

The public package runs yamllint ("relaxed", line length off) on files of version 2 and above; its
error-level rules there are trailing spaces, a missing final newline and duplicate keys (the last is
found by the reader). Windows line endings get a warning. labtax checks the same in-process, with plain string scans.
"""

from __future__ import annotations

from labtax.taxonomy.model import Finding

# Rules whose severity follows the file's version: errors from version 2 on (the public tools lint
# those files), warnings on version 1 files (which the public tools never lint). Windows line endings
# are always a warning: the public tools accept them and every later stage reads them fine.
LINT_RULES = frozenset({"yaml-trailing-space", "yaml-final-newline", "yaml-duplicate-key"})
MAX_PER_RULE = 20  # a file with trailing spaces everywhere gets a summary, not a thousand lines


def lint_text(file: str, text: str) -> list[Finding]:
    """Findings about whitespace and line endings; cheap when the file is clean."""
    findings: list[Finding] = []
    if not text:
        return findings
    if " \n" in text or "\t\n" in text or text[-1] in " \t" or " \r\n" in text or "\t\r\n" in text:
        count = 0
        for number, line in enumerate(text.split("\n"), start=1):
            stripped_cr = line.removesuffix("\r")
            if stripped_cr and stripped_cr[-1] in " \t":
                count += 1
                if count <= MAX_PER_RULE:
                    col = len(stripped_cr.rstrip(" \t")) + 1
                    findings.append(Finding(
                        "yaml-trailing-space", "error", file, number, col, "trailing whitespace", "",
                        "delete the spaces at the end of the line",
                    ))
        if count > MAX_PER_RULE:
            findings.append(Finding(
                "yaml-trailing-space", "error", file, 1, 1,
                f"{count - MAX_PER_RULE} more lines have trailing whitespace", "",
            ))
    if not text.endswith("\n"):
        lines = text.split("\n")
        findings.append(Finding(
            "yaml-final-newline", "error", file, len(lines), len(lines[-1]) + 1,
            "no newline at the end of the file", "", "end the last line with a newline",
        ))
    crlf = text.find("\r\n")
    if crlf >= 0:
        line_no = text.count("\n", 0, crlf) + 1
        col = crlf - (text.rfind("\n", 0, crlf) + 1) + 1
        findings.append(Finding(
            "yaml-newline", "warning", file, line_no, col, "Windows line endings (\\r\\n); use \\n", "",
            "convert the file to Unix line endings (e.g. dos2unix)",
        ))
    return findings
