"""Fixtures for the training tests: the real SmolLM2 tokenizer, small data directories, a runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_fixtures import make_data_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from labtax.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(tmp_path / "data")


def run_cli(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m labtax ...` in a subprocess with one thread, so that runs are comparable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "labtax", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False, **kwargs)


def step_records(metrics: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("event") == "step"]
