"""What every reporter needs besides the findings: where the files are, and how many were checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labtax.taxonomy.discover import git_toplevel
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

    @classmethod
    def for_root(cls, root: Path, files_checked: int, cwd: Path | None = None) -> ReportContext:
        """Paths shown relative to `cwd` (as a compiler does), and relative to the git work tree."""
        repo = git_toplevel(root)
        shown = os.path.relpath(root, cwd or Path.cwd())
        in_repo = os.path.relpath(root.resolve(), repo) if repo else "."
        return cls(root=root, files_checked=files_checked, display_prefix=_prefix(shown),
                   repo_prefix=_prefix(in_repo), repo_root=repo)

    def shown(self, finding: Finding) -> str:
        return self.display_prefix + finding.path

    def in_repo(self, finding: Finding) -> str:
        return self.repo_prefix + finding.path


def _prefix(relative: str) -> str:
    """A relative folder as a posix prefix for root-relative paths: "" for ".", else "dir/"."""
    return "" if relative == "." else relative.replace(os.sep, "/") + "/"


def counts(findings: list[Finding]) -> tuple[int, int]:
    errors = sum(1 for f in findings if f.severity == "error")
    return errors, len(findings) - errors
