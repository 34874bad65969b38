"""Fixtures for the CI tests."""

from __future__ import annotations

import pytest
from cihelpers import add_leaf
from gitrepo import GitRepo


@pytest.fixture
def taxonomy_repo(git_repo: GitRepo) -> GitRepo:
    """A taxonomy repository with one valid skill leaf committed on main."""
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("first leaf")
    return git_repo

