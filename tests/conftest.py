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


# ---------------------------------------------------------------- a trained checkpoint (use/, train/model_card)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The selected checkpoint of a real `labtax train` of `tiny` (knowledge phase, two steps) on small
    data whose manifest names a system turn (use_fixtures.SYSTEM, the samples' own)."""
    import json

    from train_fixtures import make_data_dir, run_cli
    from use_fixtures import SYSTEM

    root = tmp_path_factory.mktemp("trained")
    data = make_data_dir(root / "data", n_knowledge=8, n_skills=4, n_replay=2, n_test=3)
    (data / "manifest.json").write_text(json.dumps({
        "format": "labtax-manifest/1", "head": "a" * 40, "base": "b" * 40, "teacher_model": "teacher-x",
        "mix": {"system_prompt": SYSTEM},
        "leaves": [{"path": "knowledge/history/rivers/qna.yaml", "kind": "knowledge", "key": "k" * 64,
                    "status": "generated", "counts": {"train": 8, "test": 3, "replay": 2}}]}))
    out = root / "run"
    result = run_cli(["train", "--data", str(data), "--model", "tiny", "--output", str(out), "--phase", "knowledge",
                      "--max-steps", "2", "--effective-batch", "4", "--select", "last", "--report-to", "none"])
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(json.loads((out / "knowledge" / "result.json").read_text())["selected"]["path"])
