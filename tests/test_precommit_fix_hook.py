"""The shipped `labtax-fix` hook with the real pre-commit: it fixes a messy leaf in place, fails the
run that changed it (as pre-commit's own fixers do) and passes the next one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gitrepo import GitRepo
from test_precommit_hook import GOOD_LEAF, HAIKU, PRE_COMMIT, pre_commit, snapshot_of_this_checkout

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is not installed in this venv")


def test_manifest_declares_the_fix_hook_on_leaves_only() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["labtax-fix"]["entry"] == "labtax validate --fix"
    assert hooks["labtax-fix"]["language"] == "python"


def test_fix_hook_repairs_then_passes(tmp_path: Path) -> None:
    sha = snapshot_of_this_checkout(tmp_path / "hookrepo")
    tax = GitRepo(tmp_path / "taxonomy")
    tax.write(".pre-commit-config.yaml", f"repos:\n  - repo: {tmp_path / 'hookrepo'}\n    rev: {sha}\n"
                                        "    hooks:\n      - id: labtax-fix\n")
    lines = GOOD_LEAF.rstrip("\n").split("\n")
    lines.insert(1, "# kept comment   ")
    leaf = tax.write(f"{HAIKU}/qna.yaml", "\r\n".join(lines))
    tax.write(f"{HAIKU}/attribution.txt", "Title: haiku examples\nLicense: CC-BY-4.0\n")
    tax.git("add", "-A")
    home = tmp_path / "pre-commit-home"

    first = pre_commit(tax, home, "--all-files")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "labtax fix" in first.stdout and "files were modified by this hook" in first.stdout
    assert leaf.read_bytes() == GOOD_LEAF.replace("version: 3\n", "version: 3\n# kept comment\n", 1).encode()

    tax.git("add", "-A")
    second = pre_commit(tax, home, "--all-files")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout
