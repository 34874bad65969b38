"""Running git: the one way labtax starts a git process (a plain subprocess: no library to import,
which keeps `labtax diff` cheap to start)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from labtax.errors import GitError

_NO_GIT = "git is not installed or not on PATH"


class GitResult(NamedTuple):
    code: int
    out: bytes  # raw stdout: `-z` output and file names are bytes
    err: str


def first_line(text: str) -> str:
    """The first non-empty line of git's stderr, without its `fatal: ` / `error: ` prefix."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return ""


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    return {**os.environ, **extra} if extra else None


def run_git(args: Sequence[str], cwd: Path | str, *, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None) -> GitResult:
    """Run `git ARGS` in `cwd` to completion; never raises for git's own exit code."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=_env(env), input=stdin, capture_output=True,
                              check=False)
    except FileNotFoundError:
        raise GitError(_NO_GIT, hint="install git and put it on PATH") from None
    return GitResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def git_output(args: Sequence[str], cwd: Path | str, *, env: Mapping[str, str] | None = None) -> bytes:
    """stdout of `git ARGS`, or GitError with git's own first line when it fails."""
    code, out, err = run_git(args, cwd, env=env)
    if code != 0:
        raise GitError(f"git {args[0]} failed: {first_line(err) or f'exit {code}'}")
    return out


def spawn_git(args: Sequence[str], cwd: Path | str, *, env: Mapping[str, str] | None = None,
              stdin: bool = False) -> subprocess.Popen[bytes]:
    """Start `git ARGS` in the background, stdout and stderr piped (stdin too when asked)."""
    try:
        return subprocess.Popen(["git", *args], cwd=cwd, env=_env(env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError(_NO_GIT, hint="install git and put it on PATH") from None
