"""Helpers for the CI tests: the repository's own files, a labtax on PATH, leaf writers."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
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


def probe_wheel(folder: Path) -> Path:
    """A one-module wheel whose `labtax` console script prints a version: what ci-install.sh installs
    here instead of labtax itself (no index, no build)."""
    wheel = folder / "labtax_probe-0.1-py3-none-any.whl"
    info = "labtax_probe-0.1.dist-info"
    files = {
        "labtax_probe.py": "def main() -> None:\n    print('labtax, version 0.1 (probe)')\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: labtax-probe\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nlabtax = labtax_probe:main\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel
