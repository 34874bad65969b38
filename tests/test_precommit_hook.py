"""The real `pre-commit`, with this checkout as the hook repository, on a temporary taxonomy repo: the
published `labtax-validate`, and `labtax-fix`, which fixes a messy leaf in place, fails the run that
changed it (as pre-commit's own fixers do) and passes the next one.

pre-commit installs the hook's environment with pip (this machine resolves the few dependencies from
its local wheel folders); that install is the slow part, so every check shares one hook repository and
PRE_COMMIT_HOME (`hook_repo`): both hooks run in the one environment pre-commit builds for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitrepo import GitRepo

ROOT = Path(__file__).resolve().parents[1]
HAIKU = "compositional_skills/writing/poetry/haiku"
GOOD_LEAF = (ROOT / "tests/taxonomy/examples/good" / HAIKU / "qna.yaml").read_text()
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"

pytestmark = pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is not installed in this venv")


def snapshot_of_this_checkout(dest: Path) -> str:
    """A git repo holding the current working tree's package (committed or not), and its HEAD SHA."""
    repo = GitRepo(dest)
    for name in ("pyproject.toml", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    readme = ROOT / "README.md"
    (dest / "README.md").write_text(readme.read_text() if readme.exists() else "labtax\n")
    shutil.copytree(ROOT / "labtax", dest / "labtax", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return repo.commit("snapshot for the pre-commit test")


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """One snapshot of this checkout as the hook repository (path, rev) and one PRE_COMMIT_HOME for
    every test of the published hooks: pre-commit builds the hook environment (a pip install of
    labtax) once per repository and rev, so the tests of labtax-validate and labtax-fix share it."""
    root = tmp_path_factory.mktemp("precommit")
    return root / "hookrepo", snapshot_of_this_checkout(root / "hookrepo"), root / "pre-commit-home"


def pre_commit(repo: GitRepo, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PRE_COMMIT_COLOR": "never", "PATH": f"{PRE_COMMIT.parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(PRE_COMMIT), "run", *args], check=False, cwd=repo.root, env=env, capture_output=True,
                          text=True, timeout=600)


def test_pre_commit_hook_passes_good_and_fails_bad(tmp_path: Path, hook_repo: tuple[Path, str, Path]) -> None:
    hookrepo, sha, home = hook_repo
    tax = GitRepo(tmp_path / "taxonomy")
    tax.write(".pre-commit-config.yaml", f"repos:\n  - repo: {hookrepo}\n    rev: {sha}\n"
                                        "    hooks:\n      - id: labtax-validate\n")
    tax.write(f"{HAIKU}/qna.yaml", GOOD_LEAF)
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\nLicense: CC-BY-4.0\n")
    tax.write("README.md", "not a leaf: never passed to the hook\n")
    tax.git("add", "-A")

    good = pre_commit(tax, home, "--all-files")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "labtax validate" in good.stdout and "Passed" in good.stdout

    # A bad leaf fails, with the finding in the hook's output.
    tax.write("compositional_skills/bad/qna.yaml", GOOD_LEAF.replace("version: 3", "version: 4"))
    tax.write("compositional_skills/bad/attribution.txt", "x\n")
    tax.git("add", "-A")
    bad = pre_commit(tax, home, "--all-files")
    assert bad.returncode == 1
    assert "compositional_skills/bad/qna.yaml:1:10: error [version]" in bad.stdout

    # Changing only an attribution.txt validates its leaf: an empty one fails.
    tax.remove("compositional_skills/bad/qna.yaml")
    tax.write(f"{HAIKU}/attribution.txt", "")
    tax.git("add", "-A")
    only = pre_commit(tax, home, "--files", f"{HAIKU}/attribution.txt")
    assert only.returncode == 1 and "error [attribution]" in only.stdout

    # A symlinked leaf pointing outside the repository reaches the hook and is refused.
    (tmp_path / "outside.yaml").write_text(GOOD_LEAF)
    link = tax.root / "compositional_skills" / "linked" / "qna.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "outside.yaml")
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\n")
    tax.git("add", "-A")
    linked = pre_commit(tax, home, "--all-files")
    assert linked.returncode == 1 and "error [symlink-outside]" in linked.stdout
    link.unlink()

    # A misnamed leaf is passed to the hook and told how to fix it.
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\n")
    tax.write("compositional_skills/other/QNA.yml", GOOD_LEAF)
    tax.git("add", "-A")
    misnamed = pre_commit(tax, home, "--all-files")
    assert misnamed.returncode == 1 and "error [leaf-filename]" in misnamed.stdout


def test_manifest_declares_the_fix_hook_on_leaves_only() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["labtax-fix"]["entry"] == "labtax validate --fix"
    assert hooks["labtax-fix"]["language"] == "python"


def test_fix_hook_repairs_then_passes(tmp_path: Path, hook_repo: tuple[Path, str, Path]) -> None:
    hookrepo, sha, home = hook_repo  # the environment built once for both hooks
    tax = GitRepo(tmp_path / "taxonomy")
    tax.write(".pre-commit-config.yaml", f"repos:\n  - repo: {hookrepo}\n    rev: {sha}\n"
                                        "    hooks:\n      - id: labtax-fix\n")
    lines = GOOD_LEAF.rstrip("\n").split("\n")
    lines.insert(1, "# kept comment   ")
    leaf = tax.write(f"{HAIKU}/qna.yaml", "\r\n".join(lines))
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\nLicense: CC-BY-4.0\n")
    tax.git("add", "-A")

    first = pre_commit(tax, home, "--all-files")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "labtax fix" in first.stdout and "files were modified by this hook" in first.stdout
    assert leaf.read_bytes() == GOOD_LEAF.replace("version: 3\n", "version: 3\n# kept comment\n", 1).encode()

    tax.git("add", "-A")
    second = pre_commit(tax, home, "--all-files")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout


def test_the_remote_config_labtax_init_writes_runs(tmp_path: Path, hook_repo: tuple[Path, str, Path]) -> None:
    # `labtax init --labtax-repository OWNER/NAME --rev REF`'s config, as written; only the URL points at
    # the local hook repository (no network here). The default, local form: tests/ci/test_init.py.
    from labtax.scaffold.init import InitOptions, planned_files

    hookrepo, sha, home = hook_repo
    (written,) = [f for f in planned_files(InitOptions(repository="acme/labtax", ref=sha, remote_hook=True))
                  if f.relpath == ".pre-commit-config.yaml"]
    assert f"rev: {sha}" in written.content
    tax = GitRepo(tmp_path / "taxonomy")
    tax.write(".pre-commit-config.yaml", written.content.replace("https://github.com/acme/labtax", str(hookrepo)))
    tax.write(f"{HAIKU}/qna.yaml", GOOD_LEAF)
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\nLicense: CC-BY-4.0\n")
    tax.git("add", "-A")
    proc = pre_commit(tax, home, "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "labtax validate" in proc.stdout and "Passed" in proc.stdout
