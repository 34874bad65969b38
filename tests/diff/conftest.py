"""Fixtures for the diff tests."""

from __future__ import annotations

import pytest
from diff_helpers import build_taxonomy
from gitrepo import GitRepo


@pytest.fixture
def tax(git_repo: GitRepo) -> GitRepo:
    """A real repository holding a small taxonomy on main, checked out on branch `feature`."""
    build_taxonomy(git_repo)
    return git_repo
