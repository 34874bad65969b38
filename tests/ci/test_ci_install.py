"""hooks/ci-install.sh: labtax installed into its own virtualenv and put on the job's PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cihelpers import HOOKS, ROOT, probe_wheel, run


def test_installed_mode_uses_the_labtax_on_path(tmp_path: Path) -> None:
    proc = run([str(HOOKS / "ci-install.sh")], cwd=tmp_path, env={"LABTAX_VERSION": "installed"})
    assert proc.returncode == 0 and "labtax, version" in proc.stdout
    bare_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "labtax").exists())
    proc = run([str(HOOKS / "ci-install.sh")], cwd=tmp_path, env={"LABTAX_VERSION": "installed", "PATH": bare_path})
    assert proc.returncode == 2 and "not on PATH" in proc.stderr


@pytest.mark.slow
def test_source_install_into_a_fresh_venv_on_the_job_path_never_running_the_checkouts_pip_or_venv(
        tmp_path: Path) -> None:
    """From a hostile checkout (tests/ci/test_hostile_checkout.py's planted `pip/`, `venv/`, ...): a
    version given as a wheel's path installs that wheel into a new virtualenv, then what the action does
    with version "" (pip install <the action's checkout>, needs the index) installs labtax into it and
    puts it on the job's PATH; none of the checkout's modules ever runs. One virtualenv for both installs:
    creating one costs ~4 CPU-s (ensurepip)."""
    from test_hostile_checkout import plant, ran

    marker = tmp_path / "ran.txt"
    checkout = tmp_path / "taxonomy"
    plant(checkout, marker)
    github_path = tmp_path / "github_path"
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    proc = run([str(HOOKS / "ci-install.sh")], cwd=checkout, env={
        "LABTAX_VERSION": str(probe_wheel(tmp_path)), "LABTAX_VENV": str(venv), "PYTHON": base_python,
        "PIP_NO_INDEX": "1"})
    assert ran(marker) == []
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "labtax, version 0.1 (probe)" in proc.stdout
    proc = run([str(HOOKS / "ci-install.sh")], cwd=checkout, env={
        "LABTAX_SOURCE": str(ROOT), "LABTAX_VENV": str(venv), "PYTHON": base_python,
        "GITHUB_PATH": str(github_path), "PATH": "/usr/bin:/bin",
    })
    assert ran(marker) == []
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert github_path.read_text() == f"{venv / 'bin'}\n"
    version = run([str(venv / "bin" / "labtax"), "--version"], cwd=tmp_path)
    assert version.returncode == 0 and "labtax, version" in version.stdout and "probe" not in version.stdout
