"""Repository states: shallow clones, remotes or none, detached HEAD, linked worktrees, and errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from diff_helpers import ADD, POEMS, diff, skill
from gitrepo import GIT_ENV, GitRepo

from labtax.diff import changed_leaves, diff_taxonomy
from labtax.errors import EXIT_USAGE, GitError, UsageError


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def error_of(root: Path, base: str | None = None, head: str | None = None) -> str:
    with pytest.raises(GitError) as info:
        changed_leaves(root, base, head)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)  # one clear line
    return str(info.value)


def test_shallow_clone_that_reaches_the_base(tax: GitRepo, tmp_path: Path) -> None:
    tax.git("checkout", "-q", "main")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{tax.root}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    (clone / ADD).write_text(skill("addition", extra=" edited in the clone"))
    assert diff(clone) == [("M", ADD, None, ("qna",))]  # default base: origin/main, which is HEAD


def test_shallow_clone_missing_the_merge_base(tax: GitRepo, tmp_path: Path) -> None:
    tax.write(POEMS, skill("poems", extra=" on the branch"))
    tax.commit("branch edit")
    clone = tmp_path / "shallow"
    git(
        tmp_path,
        "clone",
        "-q",
        "--depth",
        "1",
        "--no-single-branch",
        "-b",
        "feature",
        f"file://{tax.root}",
        str(clone),
    )
    message = error_of(clone)
    assert "shallow" in message and "git fetch --deepen" in message and "--unshallow" in message
    git(clone, "fetch", "-q", "--deepen=1")  # what the message says to do
    assert diff(clone) == [("M", POEMS, None, ("qna",))]


def test_no_remote_defaults_to_main(tax: GitRepo) -> None:
    assert tax.git("remote") == ""
    tax.write(POEMS, skill("poems", extra=" edit"))
    tax.commit("edit")
    assert diff(tax.root) == [("M", POEMS, None, ("qna",))]
    assert diff_taxonomy(tax.root).base == tax.git("rev-parse", "main")


def test_origin_main_is_preferred_over_main(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" first"))
    first = tax.commit("first")
    tax.git("update-ref", "refs/remotes/origin/main", first)  # as if main on the remote had this commit
    tax.write(ADD, skill("addition", extra=" second"))
    tax.commit("second")
    assert diff(tax.root) == [("M", ADD, None, ("qna",))]
    assert diff(tax.root, "origin/main", "HEAD") == [("M", ADD, None, ("qna",))]


def test_detached_head_uses_main(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" edit"))
    tax.commit("edit")
    tax.git("checkout", "-q", "--detach", "HEAD")
    assert diff(tax.root) == [("M", POEMS, None, ("qna",))]


def test_detached_head_without_any_default_base(make_git_repo) -> None:  # type: ignore[no-untyped-def]
    repo: GitRepo = make_git_repo("trunk-repo")
    repo.git("checkout", "-q", "-b", "trunk")
    repo.write(POEMS, skill("poems"))
    repo.commit("first")
    repo.write(ADD, skill("addition"))
    repo.commit("second")
    repo.git("checkout", "-q", "--detach", "HEAD")
    message = error_of(repo.root)
    assert "detached" in message and "--base" in message
    assert diff(repo.root, "trunk~1") == [("A", ADD, None, ("qna",))]


def test_no_default_base_on_a_branch(make_git_repo) -> None:  # type: ignore[no-untyped-def]
    repo: GitRepo = make_git_repo("trunk-repo")
    repo.git("checkout", "-q", "-b", "trunk")
    repo.write(POEMS, skill("poems"))
    repo.commit("first")
    message = error_of(repo.root)
    assert "origin/main" in message and "--base" in message and "detached" not in message


def test_linked_worktree(tax: GitRepo, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    tax.git("worktree", "add", "-q", "-b", "wt-branch", str(wt), "main")
    (wt / POEMS).write_text(skill("poems", extra=" in the worktree"))
    git(wt, "commit", "-q", "-am", "worktree edit")
    (wt / "foundational_skills/logic").mkdir()
    (wt / "foundational_skills/logic/qna.yaml").write_text(skill("logic"))
    assert diff(wt, "main") == [
        ("M", POEMS, None, ("qna",)),
        ("A", "foundational_skills/logic/qna.yaml", None, ("qna",)),
    ]
    assert diff(wt, "main", "wt-branch") == [("M", POEMS, None, ("qna",))]
    assert diff(tax.root, "main", "wt-branch") == [
        ("M", POEMS, None, ("qna",))
    ]  # seen from the main checkout
    assert diff(tax.root, "main") == []  # the main checkout's own tree is untouched


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert "not a git repository" in error_of(tmp_path / "plain")


def test_missing_taxonomy_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        changed_leaves(tmp_path / "nowhere")


def test_unknown_refs(tax: GitRepo) -> None:
    assert error_of(tax.root, "no-such-branch").startswith("unknown ref: no-such-branch")
    assert error_of(tax.root, "main", "no-such-head").startswith("unknown ref: no-such-head")
    assert error_of(tax.root, "origin/main").startswith("unknown ref: origin/main")
    assert error_of(tax.root, "HEAD~40").startswith("unknown ref: HEAD~40")
    assert error_of(tax.root, "main", "HEAD^{tree}").startswith("unknown ref")  # a tree is not a commit


def test_option_like_ref_is_never_passed_as_an_option(tax: GitRepo, tmp_path: Path) -> None:
    target = tmp_path / "written"
    assert error_of(tax.root, f"--output={target}").startswith("unknown ref")
    assert error_of(tax.root, "main", f"--output={target}").startswith("unknown ref")
    assert not target.exists()


def test_empty_repository(git_repo: GitRepo) -> None:
    message = error_of(git_repo.root)
    assert "no commits yet" in message and "--base empty" in message
    assert changed_leaves(git_repo.root, "empty") == []


def test_no_common_history(tax: GitRepo) -> None:
    tax.git("checkout", "-q", "--orphan", "unrelated")
    tax.commit("unrelated root")
    message = error_of(tax.root, "main", "unrelated")
    assert "no common history" in message


def test_broken_repository_config_is_reported_as_such(tax: GitRepo) -> None:
    (tax.root / ".git" / "config").write_text("[core\nbroken")
    message = error_of(tax.root, "main")
    assert "bad config" in message and "unknown ref" not in message
