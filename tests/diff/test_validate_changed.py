"""`labtax validate --changed [--base REF]`: only the changed, non-deleted leaves are validated."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from diff_helpers import ADD, PHYSICS, POEMS, ROME, skill
from gitrepo import GitRepo

from labtax.cli import cli


def validate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def in_tax(tax: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    # On main, ADD and PHYSICS lack an attribution.txt: errors that --changed must not report.
    monkeypatch.chdir(tax.root)
    code, out, _ = validate()
    assert code == 1 and ADD in out and PHYSICS in out
    return tax


def test_only_changed_leaves_are_validated(in_tax: GitRepo) -> None:
    in_tax.write(POEMS, skill("poems") + "unknown_key: not allowed\n")  # committed: invalid
    in_tax.commit("break poems")
    in_tax.write("compositional_skills/writing/odes/qna.yaml", skill("odes"))  # untracked, no attribution
    code, out, _ = validate("--changed", "--base", "main")
    assert code == 1
    assert POEMS in out and "compositional_skills/writing/odes/qna.yaml" in out
    assert ADD not in out and PHYSICS not in out


def test_attribution_fix_and_deletion(in_tax: GitRepo) -> None:
    in_tax.write("knowledge/science/physics/attribution.txt", "Title: physics\nLicense: CC-BY\n")
    in_tax.git("rm", "-rq", "knowledge/history/rome")
    code, out, _ = validate("--changed", "--base", "main")
    assert code == 0, out
    assert ROME not in out and ADD not in out  # the deleted leaf is not validated, the unchanged one neither


def test_default_base_and_nothing_changed(in_tax: GitRepo) -> None:
    in_tax.write("README.md", "a non-leaf change\n")
    code, out, _ = validate("--changed")  # default base: main (no remote here)
    assert code == 0 and ADD not in out


def test_unknown_base_is_exit_2(in_tax: GitRepo) -> None:
    code, _out, err = validate("--changed", "--base", "no-such-ref")
    assert code == 2 and "unknown ref: no-such-ref" in err and "Traceback" not in err
