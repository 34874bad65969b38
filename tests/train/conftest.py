"""Fixtures for the training tests: the real SmolLM2 tokenizer, small data directories, a runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from train_fixtures import make_data_dir


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from labtax.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(tmp_path / "data")
