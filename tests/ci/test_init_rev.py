"""`labtax init` pins a labtax commit that exists: the installed one (this checkout's HEAD here) or
the one `--rev` names. The real pre-commit runs the remote form it writes with --labtax-repository in
tests/test_precommit_hook.py (in the hook environment the published hooks' tests build), the default
local hook offline in tests/ci/test_init.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cihelpers import ROOT, VENV_BIN, run
from gitrepo import GitRepo

from labtax.scaffold import revision


def head_of_this_checkout() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def written_refs(root: Path) -> tuple[str | None, str, str]:
    """The pre-commit rev (None for the local hook), the caller's `uses:` ref and its labtax-ref."""
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    caller = yaml.safe_load((root / ".github/workflows/labtax-validate.yml").read_text())
    job = caller["jobs"]["validate"]
    return config["repos"][0].get("rev"), job["uses"].split("@")[1], job["with"]["labtax-ref"]


def test_default_ref_is_the_installed_commit(git_repo: GitRepo) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout of labtax")
    proc = run([str(VENV_BIN / "labtax"), "init"], cwd=git_repo.root)
    assert proc.returncode == 0, proc.stderr
    sha = head_of_this_checkout()
    assert written_refs(git_repo.root) == (None, sha, sha)  # pre-commit: the local hook, no rev
    generate = (git_repo.root / ".github/workflows/labtax-generate.yml").read_text()
    assert f"@{sha}" in generate and "v0.1.0" not in generate


def test_rev_option_wins(git_repo: GitRepo) -> None:
    proc = run([str(VENV_BIN / "labtax"), "init", "--rev", "v9.9.9"], cwd=git_repo.root)
    assert proc.returncode == 0, proc.stderr
    assert written_refs(git_repo.root) == (None, "v9.9.9", "v9.9.9")
    # naming the repository too writes the remote pre-commit form at that rev
    proc = run([str(VENV_BIN / "labtax"), "init", "--force", "--rev", "v9.9.9", "--labtax-repository", "acme/labtax"],
               cwd=git_repo.root)
    assert proc.returncode == 0, proc.stderr
    assert written_refs(git_repo.root) == ("v9.9.9", "v9.9.9", "v9.9.9")


def test_commit_recorded_by_pip_for_a_git_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "labtax-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labtax\nVersion: 0.1.0\n")
    sha = "0123456789abcdef0123456789abcdef01234567"
    (dist / "direct_url.json").write_text(json.dumps(
        {"url": "https://github.com/acme/labtax", "vcs_info": {"vcs": "git", "commit_id": sha}}))
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert revision.commit_from_direct_url() == sha


def test_no_commit_known_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revision, "commit_from_direct_url", lambda: None)
    monkeypatch.setattr(revision, "PACKAGE_DIR", tmp_path / "labtax")  # not inside a labtax checkout
    (tmp_path / "labtax").mkdir()
    with pytest.raises(revision.UsageError, match="--rev"):
        revision.installed_ref()
    assert revision.commit_of_checkout(tmp_path / "labtax") is None
