"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from gitrepo import GitRepo

# ---------------------------------------------------------------- one torch thread (the suite's CPU budget)
# labtax picks torch's thread count from the cores the load leaves free (models.choose_threads): on an
# idle 2-core CI machine that is 2, and the suite's models are tiny, so the second thread mostly
# spin-waits. Measured on tests/eval/test_closed_book.py (one tiny training run and its eval, load ~6):
# 92.6 CPU-s at LABTAX_TORCH_THREADS=2, 17.3 at 1. Set here, before anything imports torch, so that
# the pytest process and every labtax subprocess it starts inherit it; a value the caller set is kept,
# and tests of the thread choice itself (test_threads.py) set or clear it themselves.
os.environ.setdefault("LABTAX_TORCH_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# ---------------------------------------------------------------- per-test CPU (LABTAX_TEST_CPU=FILE)
# The suite has a CPU budget (README, testing): with LABTAX_TEST_CPU=FILE set, each test phase appends
# `nodeid phase cpu_seconds wall_seconds` to FILE. CPU is this process's and its waited-for children's
# user+sys time (getrusage counts a child only once it is reaped, which subprocess.run does), so a test
# that spawns `labtax` is charged for the subprocess too. A session-scoped fixture is charged to the
# setup phase of the first test that uses it.


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(item: pytest.Item, phase: str) -> Generator[None, object, object]:
    path = os.environ.get("LABTAX_TEST_CPU")
    if not path:
        return (yield)
    cpu, wall = _cpu_seconds(), time.monotonic()
    try:
        return (yield)
    finally:
        line = f"{item.nodeid} {phase} {_cpu_seconds() - cpu:.3f} {time.monotonic() - wall:.3f}\n"
        with open(path, "a", encoding="utf-8") as out:  # one short append a line: safe beside another run
            out.write(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _timed(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _timed(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    return (yield from _timed(item, "teardown"))


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
    data whose manifest names a system turn (use_fixtures.SYSTEM, the samples' own). Short answers: the
    tests read the checkpoint's files, logits and template, not what it learnt."""
    import json

    from train_fixtures import invoke_cli, make_data_dir
    from use_fixtures import SYSTEM

    root = tmp_path_factory.mktemp("trained")
    data = make_data_dir(root / "data", n_knowledge=8, n_skills=4, n_replay=2, n_test=3, long_words=12)
    (data / "manifest.json").write_text(json.dumps({
        "format": "labtax-manifest/1", "head": "a" * 40, "base": "b" * 40, "teacher_model": "teacher-x",
        "mix": {"system_prompt": SYSTEM},
        "leaves": [{"path": "knowledge/history/rivers/qna.yaml", "kind": "knowledge", "key": "k" * 64,
                    "status": "generated", "counts": {"train": 8, "test": 3, "replay": 2}}]}))
    out = root / "run"
    # In this process: a subprocess would pay ~6 CPU-s importing torch and transformers for two steps.
    result = invoke_cli(["train", "--data", str(data), "--model", "tiny", "--output", str(out), "--phase",
                         "knowledge", "--max-steps", "2", "--effective-batch", "4", "--select", "last",
                         "--report-to", "none"])
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(json.loads((out / "knowledge" / "result.json").read_text())["selected"]["path"])
