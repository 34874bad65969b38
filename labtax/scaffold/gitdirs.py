"""The two git questions scaffolding asks: where is the work tree, where do hooks go."""

from __future__ import annotations

from pathlib import Path

from labtax.errors import GitError
from labtax.util.git import run_git


def _rev_parse(cwd: Path, *args: str) -> str:
    code, out, _err = run_git(["rev-parse", *args], cwd)
    if code != 0:
        raise GitError(
            f"{cwd} is not inside a git work tree",
            hint="run this in a taxonomy repository (or `git init` first)",
        )
    return out.decode("utf-8", "surrogateescape").strip()


def worktree_root(cwd: Path) -> Path:
    """The top of the work tree that contains `cwd`."""
    if not cwd.is_dir():
        raise GitError(f"{cwd} is not a directory")
    return Path(_rev_parse(cwd, "--show-toplevel"))


def hooks_dir(cwd: Path) -> Path:
    """Where git runs hooks from for this repository. `--git-path hooks` already honours
    core.hooksPath and, in a linked worktree, points at the common directory shared by all
    worktrees, which is what git itself uses."""
    raw = Path(_rev_parse(cwd, "--git-path", "hooks"))
    return raw if raw.is_absolute() else (cwd / raw).resolve()
