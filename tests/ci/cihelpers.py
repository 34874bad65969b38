"""Helpers for the CI tests: the repository's own files, a labtax on PATH, leaf writers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from gitrepo import GIT_ENV, GitRepo

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"
VENV_BIN = Path(sys.executable).parent


def skill_leaf(topic: str = "haiku", *, good: bool = True) -> str:
    """A compositional skill qna.yaml (version 3): valid, or missing its task_description."""
    seeds = "\n".join(
        f"  - question: Write a {topic} about subject number {i}.\n"
        f"    answer: |\n      Line one about {i}\n      line two about the {topic}\n"
        for i in range(5)
    )
    head = "version: 3\ncreated_by: tester\n"
    if good:
        head += f"task_description: Write a {topic} about a given subject.\n"
    return head + "seed_examples:\n" + seeds


ATTRIBUTION = "Title of work: seeds\nLink to work: n/a\nLicense of the work: CC0\nCreator names: tester\n"


def add_leaf(repo: GitRepo, folder: str, *, good: bool = True, topic: str = "haiku") -> str:
    """Write qna.yaml + attribution.txt under `folder`; returns the qna.yaml path."""
    repo.write(f"{folder}/qna.yaml", skill_leaf(topic, good=good))
    repo.write(f"{folder}/attribution.txt", ATTRIBUTION)
    return f"{folder}/qna.yaml"


def run_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for scripts under test: labtax's venv first on PATH, fixed git identity,
    and none of GitHub's variables unless a test sets them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LABTAX"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def run(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=run_env(env), input=stdin, capture_output=True, text=True, check=False
    )
