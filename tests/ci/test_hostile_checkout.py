"""A hostile checkout: a pull request that commits a `labtax/` package, a root-level `json.py`, a
`pip/` and a `venv/` package, each writing a marker file when imported. `python -m ...` and
`python - <<...` put the working directory first on the import path, and the CI hooks run inside
the taxonomy checkout: none of those modules may ever run (hooks/ci-preview.sh, ci-train.sh,
ci-install.sh, and the torchrun launcher of `labtax train --nproc-per-node`; the last two are checked
from such a checkout in tests/ci/test_ci_install.py and tests/train/test_torchrun_messages.py, where one
virtualenv and one launch also serve their other checks)."""

from __future__ import annotations

import sys
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


# The install step (hooks/ci-install.sh) from such a checkout: tests/ci/test_ci_install.py, whose source
# install reuses the virtualenv this probe wheel's install creates.


# The torchrun launcher of `labtax train --nproc-per-node` and its workers, run from a hostile checkout:
# tests/train/test_torchrun_messages.py (its one real launch checks the failing rank's line as well).
