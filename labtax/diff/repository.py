"""The git side of a taxonomy diff: finding the repository that holds the taxonomy, running git in it,
and resolving refs.

`repo` arguments elsewhere are the taxonomy folder (str or Path); it may be a subfolder of the git
working tree, and it may be inside a linked worktree (`git worktree add`). `open_taxonomy` turns it into
a `Taxonomy`: the GitPython repository plus where the taxonomy lies inside its working tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from labtax.errors import GitError, UsageError

# `--base empty` compares against the empty tree: every leaf counts as added.
EMPTY = "empty"
# Defaults tried in order when no --base is given (full names, so a tag called "main" cannot shadow).
DEFAULT_BASES: tuple[str, ...] = ("refs/remotes/origin/main", "refs/heads/main")

# No optional locks: a diff must never take index.lock (a concurrent `git commit` would fail).
# Literal pathspecs: a taxonomy folder named `a*b` means exactly that folder.
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_LITERAL_PATHSPECS": "1", "LC_ALL": "C"}


@dataclass
class Taxonomy:
    """An open git repository plus where the taxonomy lies inside its working tree."""

    repo: git.Repo  # type: ignore[name-defined]
    worktree: Path
    prefix: str  # posix path of the taxonomy root inside the working tree; "" at the root

    def to_repo(self, path: str) -> str:
        """A taxonomy-relative path as a path relative to the working tree root."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def from_repo(self, path: str) -> str | None:
        """A working-tree-relative path as a taxonomy-relative one; None when outside the taxonomy."""
        if not self.prefix:
            return path
        head = self.prefix + "/"
        return path[len(head) :] if path.startswith(head) else None

    def git(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        """Run one git command at the working tree root; raw stdout, GitError on an unexpected exit."""
        code, out, err = self.git_status(*args)
        if code not in ok:
            raise GitError(f"git {args[0]} failed: {_first_line(err) or f'exit {code}'}")
        return out

    def git_status(self, *args: str) -> tuple[int, bytes, str]:
        """Run one git command through GitPython; (exit code, raw stdout, stderr text), never raising."""
        code, out, err = self.repo.git.execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,  # -z output may legitimately end in a newline-named path
            env=GIT_ENV,
        )
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err or "")
        return int(code or 0), out if isinstance(out, bytes) else bytes(out or b""), text

    def spawn(self, *args: str) -> Job:
        """Start one git command in the background (it runs while other git commands run)."""
        handle = self.repo.git.execute(["git", *args], as_process=True, env=GIT_ENV)
        return Job(handle, args[0])

    def close(self) -> None:
        self.repo.close()


class Job:
    """A git command running in the background; `result()` waits for its stdout."""

    def __init__(self, handle: Any, name: str) -> None:
        # GitPython's AutoInterrupt handle kills the process when collected: keep it for our lifetime,
        # and talk to the plain Popen inside it.
        self.handle = handle
        self.proc = handle.proc
        self.name = name
        self._out: bytes | None = None

    def result(self) -> bytes:
        if self._out is not None:
            return self._out
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise GitError(f"git {self.name} failed: {_first_line(text) or f'exit {self.proc.returncode}'}")
        self._out = bytes(out)
        return self._out

    def cancel(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return ""


@contextmanager
def open_taxonomy(path: str | os.PathLike[str]) -> Iterator[Taxonomy]:
    """Find the git repository holding the taxonomy folder `path` (searching parent folders)."""
    try:
        import git  # GitPython: imported here so that `import labtax.diff` stays cheap
    except ImportError as exc:  # GitPython refuses to import without a working git executable
        raise GitError(
            f"git is not usable: {str(exc).splitlines()[0]}", hint="install git and put it on PATH"
        ) from None

    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"taxonomy folder does not exist: {folder}")
    if not folder.is_dir():
        raise UsageError(f"taxonomy path is not a folder: {folder}")
    try:
        repo = git.Repo(folder, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(
            f"not a git repository: {folder}",
            hint="run labtax inside a git checkout of the taxonomy, or pass --taxonomy DIR",
        ) from None
    try:
        if repo.working_tree_dir is None:
            raise GitError(f"{folder} is in a bare repository (no working tree)")
        worktree = Path(repo.working_tree_dir).resolve()
        try:
            prefix = folder.resolve().relative_to(worktree).as_posix()
        except ValueError:
            raise GitError(f"taxonomy folder {folder} is not inside the working tree {worktree}") from None
        tax = Taxonomy(repo=repo, worktree=worktree, prefix="" if prefix == "." else prefix)
        yield tax
    finally:
        repo.close()


# ------------------------------------------------------------------ refs


def is_shallow(tax: Taxonomy) -> bool:
    return (Path(tax.repo.common_dir) / "shallow").exists()


def head_is_born(tax: Taxonomy) -> bool:
    """False in an empty repository (or on an orphan branch before its first commit)."""
    return tax.repo.head.is_valid()


def check_ref_syntax(ref: str) -> None:
    # A ref starting with "-" would be read as an option by git.
    if not ref or ref.startswith("-") or "\0" in ref or "\n" in ref:
        raise GitError(f"unknown ref: {ref!r}")


def resolve_commit(tax: Taxonomy, ref: str) -> str:
    """The full SHA of the commit `ref` names, or GitError "unknown ref"."""
    check_ref_syntax(ref)
    code, out, _ = tax.git_status("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if code != 0:
        check_repository_usable(tax)
        raise GitError(f"unknown ref: {ref}", hint=_unknown_ref_hint(tax, ref))
    return out.decode().strip()


def check_repository_usable(tax: Taxonomy) -> None:
    """On an error path only: when git itself refuses the repository (dubious ownership, a broken
    config), say what git says instead of blaming the ref."""
    code, _, err = tax.git_status("rev-parse", "--git-dir")
    if code != 0:
        raise GitError(
            f"git cannot use the repository at {tax.worktree}: {_first_line(err) or f'exit {code}'}"
        )


def _unknown_ref_hint(tax: Taxonomy, ref: str) -> str:
    if is_shallow(tax):
        return "this is a shallow clone; fetch the ref or more history (git fetch --unshallow)"
    if ref.startswith(("origin/", "refs/remotes/")):
        return "fetch it first (git fetch origin), or pass another --base"
    return "pass a branch, tag or SHA that exists here"


def empty_tree(tax: Taxonomy) -> str:
    """The empty tree's object name in this repository's hash (git knows it without storing it)."""
    return tax.git("hash-object", "-t", "tree", "/dev/null").decode().strip()


class RevRange(NamedTuple):
    """What `git rev-parse base...head` says: both SHAs and every merge-base (best first)."""

    base: str
    head: str
    merge_bases: tuple[str, ...]

    @property
    def merge_base(self) -> str | None:
        return self.merge_bases[0] if self.merge_bases else None


def try_merge_base_range(tax: Taxonomy, base: str, head: str) -> RevRange | None:
    """Both SHAs and the merge-bases from ONE `git rev-parse base...head`; None if a ref does not
    resolve to a commit.

    rev-parse prints the right side, the left side, then `^<sha>` per merge-base (the first is the one
    `git diff base...head` uses).
    """
    check_ref_syntax(base)
    check_ref_syntax(head)
    code, out, _ = tax.git_status("rev-parse", f"{base}^{{commit}}...{head}^{{commit}}")
    if code != 0:
        return None
    lines = out.decode().split()
    return RevRange(lines[1], lines[0], tuple(line[1:] for line in lines[2:] if line.startswith("^")))


def merge_base_range(tax: Taxonomy, base: str, head: str) -> RevRange:
    """Like `try_merge_base_range`, but an unknown ref is a GitError naming it."""
    found = try_merge_base_range(tax, base, head)
    if found is None:
        # Only on failure: find out which side is unknown, for a precise message.
        resolve_commit(tax, head)
        resolve_commit(tax, base)
        raise GitError(f"cannot compare {base} with {head}")
    return found
