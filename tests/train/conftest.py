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


@pytest.fixture
def short_data_dir(tmp_path: Path) -> Path:
    """data_dir's samples with answers of 5-12 words instead of 5-60, for tests that count samples,
    steps and checkpoints or compare two runs, never tokens: the LM head over the 49k vocabulary
    costs per token and is most of a tiny model's step (test_inputs.py: 23.9 -> 16.2 CPU-s)."""
    return make_data_dir(tmp_path / "data", long_words=12)
