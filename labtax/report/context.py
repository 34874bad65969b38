"""What every reporter needs besides the findings: where the files are, and how many were checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labtax.taxonomy.model import Finding


@dataclass(frozen=True)
class ReportContext:
    """`display_prefix` turns a root-relative path into the one shown to the user (relative to the
    current directory); `repo_prefix` into one relative to the git work tree (what GitHub and SARIF
    viewers need)."""

    root: Path
    files_checked: int
    display_prefix: str = ""
    repo_prefix: str = ""
    repo_root: Path | None = None

    def shown(self, finding: Finding) -> str:
        return self.display_prefix + finding.path

    def in_repo(self, finding: Finding) -> str:
        return self.repo_prefix + finding.path


def counts(findings: list[Finding]) -> tuple[int, int]:
    errors = sum(1 for f in findings if f.severity == "error")
    return errors, len(findings) - errors
