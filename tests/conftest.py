"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gitrepo import GitRepo


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty real git repository on branch main."""
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def make_git_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    """A factory for several repositories in one test: make_git_repo("name")."""

    def make(name: str) -> GitRepo:
        return GitRepo(tmp_path / name)

    return make


# ---------------------------------------------------------------- openai_server (sdg, eval judge)


@pytest.fixture
def openai_server():  # type: ignore[no-untyped-def]
    """A real OpenAI-compatible server on 127.0.0.1 answering labtax's LAB prompts (tests/openai_server.py)."""
    from openai_server import OpenAIServer, lab_responder

    with OpenAIServer(lab_responder()) as server:
        yield server


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch's thread count restored after a test whose in-process teacher sets it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
