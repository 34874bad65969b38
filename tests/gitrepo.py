"""A small helper around a real temporary git repository, shared by the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Fixed identity and dates so that commits (and their SHAs) are reproducible.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A real git repository in a temporary directory, with helpers to write files and commit."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        self.git("config", "user.name", "Test Author")
        self.git("config", "user.email", "author@example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, **GIT_ENV}
        out = subprocess.run(
            ["git", *args], cwd=self.root, env=env, check=check, capture_output=True, text=True
        )
        return out.stdout.strip()

    def write(self, relpath: str, content: str | bytes) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def remove(self, relpath: str) -> None:
        (self.root / relpath).unlink()

    def commit(self, message: str = "change", *, add_all: bool = True) -> str:
        """Commit (staging everything unless told not to) and return the new HEAD SHA."""
        if add_all:
            self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")
