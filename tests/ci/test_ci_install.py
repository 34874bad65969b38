"""hooks/ci-install.sh: labtax installed into its own virtualenv and put on the job's PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cihelpers import HOOKS, ROOT, run


def test_installed_mode_uses_the_labtax_on_path(tmp_path: Path) -> None:
    proc = run([str(HOOKS / "ci-install.sh")], cwd=tmp_path, env={"LABTAX_VERSION": "installed"})
    assert proc.returncode == 0 and "labtax, version" in proc.stdout
    bare_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "labtax").exists())
    proc = run([str(HOOKS / "ci-install.sh")], cwd=tmp_path, env={"LABTAX_VERSION": "installed", "PATH": bare_path})
    assert proc.returncode == 2 and "not on PATH" in proc.stderr


@pytest.mark.slow
def test_source_install_into_a_fresh_venv_on_the_job_path(tmp_path: Path) -> None:
    # what the action does with version "": pip install <the action's checkout> (needs the index)
    github_path = tmp_path / "github_path"
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    proc = run([str(HOOKS / "ci-install.sh")], cwd=tmp_path, env={
        "LABTAX_SOURCE": str(ROOT), "LABTAX_VENV": str(venv), "PYTHON": base_python,
        "GITHUB_PATH": str(github_path), "PATH": "/usr/bin:/bin",
    })
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert github_path.read_text() == f"{venv / 'bin'}\n"
    version = run([str(venv / "bin" / "labtax"), "--version"], cwd=tmp_path)
    assert version.returncode == 0 and "labtax, version" in version.stdout
