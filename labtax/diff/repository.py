"""The git side of a taxonomy diff: finding the repository that holds the taxonomy, running git in it,
and resolving refs.

`repo` arguments elsewhere are the taxonomy folder (str or Path); it may be a subfolder of the git
working tree, and it may be inside a linked worktree (`git worktree add`). `open_taxonomy` turns it into
a `Taxonomy`: the work tree, its common git directory and where the taxonomy lies inside it. git runs
as a plain subprocess (`labtax.util.git`); no git library is imported.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from labtax.errors import GitError, UsageError
from labtax.util.git import first_line, run_git, spawn_git

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

    worktree: Path
    prefix: str  # posix path of the taxonomy root inside the working tree; "" at the root
    common_dir: Path  # the git directory shared by all linked worktrees (shallow, refs)

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
            raise GitError(f"git {args[0]} failed: {first_line(err) or f'exit {code}'}")
        return out

    def git_status(self, *args: str) -> tuple[int, bytes, str]:
        """Run one git command; (exit code, raw stdout, stderr text), never raising for git's exit."""
        return tuple(run_git(args, self.worktree, env=GIT_ENV))  # type: ignore[return-value]

    def spawn(self, *args: str, stdin: bool = False) -> Job:
        """Start one git command in the background (it runs while other git commands run)."""
        return Job(spawn_git(args, self.worktree, env=GIT_ENV, stdin=stdin), args[0])


class Job:
    """A git command running in the background; `result()` waits for its stdout."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        self.proc = proc
        self.name = name
        self._out: bytes | None = None

    def result(self) -> bytes:
        if self._out is not None:
            return self._out
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            text = err.decode("utf-8", "replace")
            raise GitError(f"git {self.name} failed: {first_line(text) or f'exit {self.proc.returncode}'}")
        self._out = bytes(out)
        return self._out

    def cancel(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()


def _find_repository(start: Path) -> tuple[Path, Path] | None:
    """(work tree, common git directory) found on disk the way git finds them, without starting git:
    the nearest `.git` folder, or `.git` file (`gitdir: ...`, a linked worktree or a submodule)."""
    for folder in (start, *start.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            gitdir = dotgit
        elif dotgit.is_file():
            try:
                text = dotgit.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None
            if not text.startswith("gitdir:"):
                return None
            gitdir = (folder / text.removeprefix("gitdir:").strip()).resolve()
        else:
            continue
        try:
            common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        except OSError:
            common = gitdir  # not a linked worktree: the git directory is the common one
        return folder, common
    return None


def _ask_git(folder: Path) -> tuple[Path, Path]:
    """What git itself says (GIT_DIR set, or nothing found on disk): the work tree and common git
    directory, or why there is none (not a repository, bare, git refusing it)."""
    # --show-toplevel comes last: it is the one that fails in a bare repository.
    code, out, err = run_git(["rev-parse", "--is-bare-repository", "--git-common-dir", "--show-toplevel"],
                             folder, env=GIT_ENV)
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if lines[:1] == ["true"]:
        raise GitError(f"{folder} is in a bare repository (no working tree)")
    if code != 0 or len(lines) < 3:
        if "not a git repository" in err:
            raise GitError(
                f"not a git repository: {folder}",
                hint="run labtax inside a git checkout of the taxonomy, or pass --taxonomy DIR",
            )
        raise GitError(f"git cannot use the repository at {folder}: {first_line(err) or f'exit {code}'}")
    return Path(lines[2]).resolve(), (folder / lines[1]).resolve()


@contextmanager
def open_taxonomy(path: str | os.PathLike[str]) -> Iterator[Taxonomy]:
    """Find the git repository holding the taxonomy folder `path` (searching parent folders)."""
    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"taxonomy folder does not exist: {folder}")
    if not folder.is_dir():
        raise UsageError(f"taxonomy path is not a folder: {folder}")
    found = None if "GIT_DIR" in os.environ else _find_repository(folder.resolve())
    if found is None:
        found = _ask_git(folder)
    worktree, common_dir = found
    try:
        prefix = folder.resolve().relative_to(worktree).as_posix()
    except ValueError:
        raise GitError(f"taxonomy folder {folder} is not inside the working tree {worktree}") from None
    yield Taxonomy(worktree=worktree, prefix="" if prefix == "." else prefix, common_dir=common_dir)


# ------------------------------------------------------------------ refs


def is_shallow(tax: Taxonomy) -> bool:
    return (tax.common_dir / "shallow").exists()


def head_is_born(tax: Taxonomy) -> bool:
    """False in an empty repository (or on an orphan branch before its first commit)."""
    return tax.git_status("rev-parse", "--verify", "--quiet", "HEAD^{commit}")[0] == 0


def head_is_detached(tax: Taxonomy) -> bool:
    """True when HEAD names a commit rather than a branch."""
    return tax.git_status("symbolic-ref", "--quiet", "HEAD")[0] != 0


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
            f"git cannot use the repository at {tax.worktree}: {first_line(err) or f'exit {code}'}"
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
