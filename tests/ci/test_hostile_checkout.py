"""A hostile checkout: a pull request that commits a `labtax/` package, a root-level `json.py`, a
`pip/` and a `venv/` package, each writing a marker file when imported. `python -m ...` and
`python - <<...` put the working directory first on the import path, and the CI hooks run inside
the taxonomy checkout: none of those modules may ever run (hooks/ci-preview.sh, ci-train.sh,
ci-install.sh; the torchrun launcher of `labtax train --nproc-per-node` is checked from such a
checkout in tests/train/test_torchrun_messages.py)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from cihelpers import HOOKS, add_leaf, run
from gitrepo import GitRepo

PLANT = "import os\nwith open({marker!r}, 'a') as f:\n    f.write({name!r} + '\\n')\n"
MODULES = ["json.py", "labtax/__init__.py", "labtax/__main__.py", "labtax/sdg/__init__.py",
           "labtax/sdg/preview.py", "pip/__init__.py", "pip/__main__.py", "venv/__init__.py",
           "venv/__main__.py", "torch/__init__.py"]


def plant(root: Path, marker: Path) -> None:
    """Write every hostile module under `root`; each appends its own name to `marker` when run."""
    for name in MODULES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PLANT.format(marker=str(marker), name=name))


def ran(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def test_preview_never_imports_the_checkouts_labtax(git_repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("haiku")
    plant(git_repo.root, marker)
    head = git_repo.commit("a pull request with a labtax/ package and a json.py")
    summary = tmp_path / "summary.md"
    proc = run([str(HOOKS / "ci-preview.sh")], cwd=git_repo.root, env={
        "LABTAX_BASE": base, "LABTAX_HEAD": head, "LABTAX_OUTPUT": "preview-out",  # relative, on purpose
        "GITHUB_STEP_SUMMARY": str(summary), "LABTAX_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran(marker) == []
    assert "No changed leaf to preview" in summary.read_text()


STAND_IN = """#!{python}
import json, sys
from pathlib import Path
args = sys.argv[1:]
opt = dict(zip(args[1::2], args[2::2]))
if args[0] == "train":
    out = Path(opt["--output"])
    ckpt = out / "knowledge" / "checkpoints" / "samples_8"
    ckpt.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({{"phases": {{"knowledge": {{"start": "tiny"}}}},
                                                  "final": str(ckpt)}}))
    sys.exit(0)
print("| leaf | base | candidate |")
sys.exit(0)
"""


def test_train_step_never_imports_the_checkouts_json(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    checkout = tmp_path / "taxonomy"
    plant(checkout, marker)
    bin_dir = tmp_path / "bin"  # the stand-in's own folder is on its path, so not the checkout
    bin_dir.mkdir()
    labtax = bin_dir / "labtax"
    labtax.write_text(STAND_IN.format(python=sys.executable))
    labtax.chmod(0o755)
    proc = run([str(HOOKS / "ci-train.sh")], cwd=checkout, env={
        "LABTAX": str(labtax), "LABTAX_DATA": str(tmp_path / "data"), "LABTAX_OUTPUT": str(tmp_path / "out")})
    assert ran(marker) == [], proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert f"chosen checkpoint: {tmp_path / 'out' / 'knowledge' / 'checkpoints' / 'samples_8'}" in proc.stdout


def _probe_wheel(folder: Path) -> Path:
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


def test_install_step_never_runs_the_checkouts_pip_or_venv(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    checkout = tmp_path / "taxonomy"
    plant(checkout, marker)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    proc = run([str(HOOKS / "ci-install.sh")], cwd=checkout, env={
        "LABTAX_VERSION": str(_probe_wheel(tmp_path)), "LABTAX_VENV": str(venv), "PYTHON": base_python,
        "PIP_NO_INDEX": "1"})
    assert ran(marker) == []
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "labtax, version 0.1 (probe)" in proc.stdout


# The torchrun launcher of `labtax train --nproc-per-node` and its workers, run from a hostile checkout:
# tests/train/test_torchrun_messages.py (its one real launch checks the failing rank's line as well).
