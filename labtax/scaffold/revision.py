"""Which labtax commit `labtax init` pins: one that exists, never a tag that was never made.

In order: the commit pip recorded when labtax was installed from a git URL (`direct_url.json`,
PEP 610), else the HEAD of the labtax checkout this code runs from (an editable install, or a
PYTHONPATH). A plain install from a package index records neither; then the user names the ref.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from labtax.errors import GitError, UsageError
from labtax.util.git import run_git

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def commit_from_direct_url() -> str | None:
    """The commit pip installed labtax from, when it came from a git URL."""
    from importlib import metadata  # ~20 ms, for `labtax init` only: not on every command line's import

    try:
        text = metadata.distribution("labtax").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) and _SHA.fullmatch(commit) else None


def commit_of_checkout(package_dir: Path | None = None) -> str | None:
    """HEAD of the labtax repository holding `package_dir` (one with labtax's hook manifest at its
    top, so a taxonomy repository that merely vendors the package does not count)."""
    package_dir = package_dir or PACKAGE_DIR
    def git(*args: str) -> str | None:
        try:
            code, out, _err = run_git(args, package_dir)
        except GitError:  # no git here: not a checkout we can read
            return None
        return out.decode("utf-8", "replace").strip() if code == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or not (Path(top) / ".pre-commit-hooks.yaml").is_file() or Path(top) != package_dir.parent:
        return None
    head = git("rev-parse", "HEAD")
    return head if head and _SHA.fullmatch(head) else None


def installed_ref() -> str:
    """The full SHA of the installed labtax, or a UsageError saying to pass --rev."""
    commit = commit_from_direct_url() or commit_of_checkout()
    if commit is None:
        raise UsageError("cannot tell which labtax commit is installed (not a git checkout, not installed "
                         "from a git URL); pass --rev TAG|SHA of the labtax repository to pin")
    return commit
