"""hooks/ci-diff-range.sh: GitHub events (push, new branch, force push, deleted branch, pull
requests, manual runs) turned into the base/head that the generate step diffs, on real repositories.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cihelpers import HOOKS, add_leaf, run
from gitrepo import GitRepo

ZERO = "0" * 40
SCRIPT = str(HOOKS / "ci-diff-range.sh")


def range_for(repo: Path, tmp_path: Path, **event: str) -> dict[str, str]:
    """Run the script like the action does and read back what it wrote to $GITHUB_OUTPUT."""
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    proc = run([SCRIPT], cwd=repo, env={**event, "GITHUB_OUTPUT": str(out_file)})
    assert proc.returncode == 0, proc.stderr
    written = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    printed = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert written == printed and set(written) == {"base", "head", "skip", "reason"}
    return written


def changed_leaves(repo: Path, base: str, head: str) -> list[str]:
    """What `labtax diff` (the real command) reports for the range: the proof the range is right."""
    proc = run(["labtax", "diff", "--base", base, "--head", head, "--format", "json"], cwd=repo)
    assert proc.returncode == 0, proc.stderr
    return [c["path"] for c in json.loads(proc.stdout)["changes"]]


@pytest.fixture
def history(git_repo: GitRepo) -> tuple[GitRepo, str, str]:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    c1 = git_repo.commit("haiku")
    add_leaf(git_repo, "compositional_skills/writing/limerick", topic="limerick")
    c2 = git_repo.commit("limerick")
    return git_repo, c1, c2


def test_push_diffs_before_to_after(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, c1, c2 = history
    got = range_for(repo.root, tmp_path, EVENT_NAME="push", BEFORE=c1, AFTER=c2)
    assert (got["base"], got["head"], got["skip"]) == (c1, c2, "false")
    assert changed_leaves(repo.root, got["base"], got["head"]) == [
        "compositional_skills/writing/limerick/qna.yaml"
    ]


def test_new_branch_with_all_zero_before_means_everything(
    history: tuple[GitRepo, str, str], tmp_path: Path
) -> None:
    repo, _, c2 = history
    got = range_for(repo.root, tmp_path, EVENT_NAME="push", BEFORE=ZERO, AFTER=c2)
    assert (got["base"], got["head"]) == ("empty", c2)
    assert "new branch" in got["reason"]
    assert len(changed_leaves(repo.root, "empty", c2)) == 2


def test_force_push_diffs_from_the_fork_point(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, c1, old_tip = history
    # rewrite history: drop the limerick commit, add a different leaf instead
    repo.git("reset", "-q", "--hard", c1)
    add_leaf(repo, "compositional_skills/writing/sonnet", topic="sonnet")
    new_tip = repo.commit("sonnet instead")
    got = range_for(repo.root, tmp_path, EVENT_NAME="push", BEFORE=old_tip, AFTER=new_tip)
    assert (got["base"], got["head"]) == (c1, new_tip)
    assert "force push" in got["reason"]
    assert changed_leaves(repo.root, got["base"], got["head"]) == [
        "compositional_skills/writing/sonnet/qna.yaml"
    ]


def test_force_push_whose_old_tip_the_clone_lacks_means_everything(
    history: tuple[GitRepo, str, str], tmp_path: Path
) -> None:
    repo, c1, old_tip = history
    repo.git("reset", "-q", "--hard", c1)
    add_leaf(repo, "compositional_skills/writing/sonnet", topic="sonnet")
    new_tip = repo.commit("sonnet instead")
    # a fresh clone (what actions/checkout makes) only has reachable commits: not the old tip
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(repo.root), str(clone)], check=True)
    assert subprocess.run(["git", "cat-file", "-e", f"{old_tip}^{{commit}}"], cwd=clone, check=False).returncode != 0
    got = range_for(clone, tmp_path, EVENT_NAME="push", BEFORE=old_tip, AFTER=new_tip)
    assert (got["base"], got["head"]) == ("empty", new_tip)
    assert "not in the history" in got["reason"]


def test_deleted_branch_is_skipped(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, _, c2 = history
    got = range_for(repo.root, tmp_path, EVENT_NAME="push", BEFORE=c2, AFTER=ZERO)
    assert got["skip"] == "true"


def test_pull_request_uses_its_base_sha(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, c1, c2 = history
    got = range_for(repo.root, tmp_path, EVENT_NAME="pull_request", PR_BASE_SHA=c1, PR_HEAD_SHA=c2)
    assert (got["base"], got["head"]) == (c1, c2)


def test_merged_pull_request_diffs_base_to_merge_commit(git_repo: GitRepo, tmp_path: Path) -> None:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("haiku")
    git_repo.git("checkout", "-q", "-b", "topic")
    add_leaf(git_repo, "compositional_skills/writing/limerick", topic="limerick")
    pr_head = git_repo.commit("limerick")
    git_repo.git("checkout", "-q", "main")
    git_repo.git("merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    merge = git_repo.head()
    got = range_for(
        git_repo.root, tmp_path, EVENT_NAME="pull_request", PR_BASE_SHA=base, PR_HEAD_SHA=pr_head,
        PR_MERGED="true", PR_MERGE_SHA=merge,
    )
    assert (got["base"], got["head"]) == (base, merge)
    assert changed_leaves(git_repo.root, base, merge) == ["compositional_skills/writing/limerick/qna.yaml"]


def test_manual_run_means_everything(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, _, c2 = history
    got = range_for(repo.root, tmp_path, EVENT_NAME="workflow_dispatch")
    assert (got["base"], got["head"]) == ("empty", c2)


def test_shallow_clone_is_refused_with_the_fix(history: tuple[GitRepo, str, str], tmp_path: Path) -> None:
    repo, c1, c2 = history
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone)], check=True
    )
    proc = run([SCRIPT], cwd=clone, env={"EVENT_NAME": "push", "BEFORE": c1, "AFTER": c2})
    assert proc.returncode == 2
    assert "fetch-depth: 0" in proc.stderr and proc.stdout == ""
