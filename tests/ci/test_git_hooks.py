"""The plain git hooks through real `git commit` and `git push` (to a local bare remote), installed
by the real `labtax install-hooks`: good leaves pass, bad leaves are blocked."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from cihelpers import ROOT, VENV_BIN, add_leaf, run
from gitrepo import GitRepo

BAD = "compositional_skills/writing/broken"


def install(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([str(VENV_BIN / "labtax"), "install-hooks", *args], cwd=repo)


def commit(repo: Path, message: str, *extra: str) -> subprocess.CompletedProcess[str]:
    run(["git", "add", "-A"], cwd=repo)
    return run(["git", "commit", "-q", "-m", message, *extra], cwd=repo)


def head(repo: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()


def no_labtax_path() -> str:
    """A PATH with git and a shell but without any labtax."""
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "labtax").exists())


@pytest.fixture
def hooked(taxonomy_repo: GitRepo) -> GitRepo:
    proc = install(taxonomy_repo.root)
    assert proc.returncode == 0, proc.stderr
    return taxonomy_repo


def test_install_writes_executable_hooks_and_is_idempotent(taxonomy_repo: GitRepo) -> None:
    proc = install(taxonomy_repo.root)
    assert proc.returncode == 0, proc.stderr
    hooks = taxonomy_repo.root / ".git" / "hooks"
    for name in ("pre-commit", "pre-push"):
        mode = (hooks / name).stat().st_mode
        assert mode & stat.S_IXUSR, name
        assert "# labtax-hook" in (hooks / name).read_text()
    # each line names a path that exists from the work tree's top (it used to be relative to .git)
    assert proc.stdout.split() == ["created", ".git/hooks/pre-commit", "created", ".git/hooks/pre-push"]
    # resolved: the venv may be reached through a symlink (a worktree sharing one)
    assert Path(taxonomy_repo.git("config", "labtax.command")).resolve() == (VENV_BIN / "labtax").resolve()
    again = install(taxonomy_repo.root)
    assert again.returncode == 0 and again.stdout.count("unchanged") == 2


def test_commit_of_a_good_leaf_passes(hooked: GitRepo) -> None:
    before = head(hooked.root)
    add_leaf(hooked, "compositional_skills/writing/limerick", topic="limerick")
    proc = commit(hooked.root, "good leaf")
    assert proc.returncode == 0, proc.stderr
    assert head(hooked.root) != before


def test_commit_of_a_bad_leaf_is_blocked(hooked: GitRepo) -> None:
    before = head(hooked.root)
    add_leaf(hooked, BAD, good=False)
    proc = commit(hooked.root, "bad leaf")
    assert proc.returncode != 0
    assert head(hooked.root) == before
    assert f"{BAD}/qna.yaml" in proc.stdout + proc.stderr  # the finding names the file
    assert "blocked" in proc.stderr and "--no-verify" in proc.stderr


def test_attribution_change_validates_its_leaf(hooked: GitRepo) -> None:
    # a leaf made bad, then only its attribution.txt is staged: the hook checks the qna.yaml
    add_leaf(hooked, BAD, good=False)
    subprocess.run(["git", "add", f"{BAD}/qna.yaml"], cwd=hooked.root, check=True)
    assert commit(hooked.root, "bad", "--no-verify").returncode == 0
    hooked.write(f"{BAD}/attribution.txt", "Title of work: changed\n")
    proc = commit(hooked.root, "attribution only")
    assert proc.returncode != 0 and f"{BAD}/qna.yaml" in proc.stdout + proc.stderr


def test_partially_staged_leaf_is_refused(hooked: GitRepo) -> None:
    add_leaf(hooked, BAD, good=False)
    subprocess.run(["git", "add", "-A"], cwd=hooked.root, check=True)
    add_leaf(hooked, BAD, good=True)  # fixed on disk, but the bad version is what is staged
    before = head(hooked.root)
    proc = run(["git", "commit", "-q", "-m", "partial"], cwd=hooked.root)
    assert proc.returncode != 0 and head(hooked.root) == before
    assert "not staged" in proc.stderr


def test_missing_labtax_says_what_to_do(hooked: GitRepo) -> None:
    hooked.git("config", "--unset", "labtax.command")
    add_leaf(hooked, "compositional_skills/writing/limerick", topic="limerick")
    subprocess.run(["git", "add", "-A"], cwd=hooked.root, check=True)
    proc = run(["git", "commit", "-q", "-m", "x"], cwd=hooked.root, env={"PATH": no_labtax_path()})
    assert proc.returncode != 0
    assert "labtax is not installed" in proc.stderr
    assert "pip install labtax" in proc.stderr and "LABTAX=" in proc.stderr
    # the override: LABTAX names the program
    proc = run(
        ["git", "commit", "-q", "-m", "x"], cwd=hooked.root,
        env={"PATH": no_labtax_path(), "LABTAX": str(VENV_BIN / "labtax")},
    )
    assert proc.returncode == 0, proc.stderr


def test_pre_push_blocks_a_bad_leaf_and_passes_good_ones(hooked: GitRepo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    hooked.git("remote", "add", "origin", str(remote))
    # a new branch on the remote (remote sha all zeros): the good history goes through
    proc = run(["git", "push", "-q", "origin", "main"], cwd=hooked.root)
    assert proc.returncode == 0, proc.stderr
    assert run(["git", "rev-parse", "main"], cwd=remote).stdout.strip() == head(hooked.root)
    pushed = head(hooked.root)

    add_leaf(hooked, "compositional_skills/writing/limerick", topic="limerick")
    assert commit(hooked.root, "good").returncode == 0
    add_leaf(hooked, BAD, good=False)
    assert commit(hooked.root, "bad, committed past the hook", "--no-verify").returncode == 0
    proc = run(["git", "push", "origin", "main"], cwd=hooked.root)
    assert proc.returncode != 0
    assert f"{BAD}/qna.yaml" in proc.stdout + proc.stderr
    assert run(["git", "rev-parse", "main"], cwd=remote).stdout.strip() == pushed

    # fixed in a new commit: the push (of both commits) passes
    add_leaf(hooked, BAD, good=True)
    assert commit(hooked.root, "fix").returncode == 0
    proc = run(["git", "push", "-q", "origin", "main"], cwd=hooked.root)
    assert proc.returncode == 0, proc.stderr
    assert run(["git", "rev-parse", "main"], cwd=remote).stdout.strip() == head(hooked.root)


def test_pre_push_checks_the_pushed_commit_not_the_work_tree(hooked: GitRepo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    hooked.git("remote", "add", "origin", str(remote))
    assert run(["git", "push", "-q", "origin", "main"], cwd=hooked.root).returncode == 0
    # a bad leaf on another branch, pushed while main (where the file does not exist) is checked out
    hooked.git("checkout", "-q", "-b", "topic")
    add_leaf(hooked, BAD, good=False)
    assert commit(hooked.root, "bad", "--no-verify").returncode == 0
    hooked.git("checkout", "-q", "main")
    proc = run(["git", "push", "origin", "topic"], cwd=hooked.root)
    assert proc.returncode != 0 and f"{BAD}/qna.yaml" in proc.stdout + proc.stderr
    assert run(["git", "branch", "--list", "topic"], cwd=remote).stdout.strip() == ""
    assert hooked.git("worktree", "list").count("\n") == 0  # the side checkout was removed


def test_hooks_go_where_core_hookspath_points(taxonomy_repo: GitRepo) -> None:
    taxonomy_repo.git("config", "core.hooksPath", ".githooks")
    assert install(taxonomy_repo.root).returncode == 0
    assert (taxonomy_repo.root / ".githooks" / "pre-commit").is_file()
    add_leaf(taxonomy_repo, BAD, good=False)
    assert commit(taxonomy_repo.root, "bad").returncode != 0


def test_linked_worktree_installs_into_the_shared_hooks(taxonomy_repo: GitRepo, tmp_path: Path) -> None:
    other = tmp_path / "wt"
    taxonomy_repo.git("worktree", "add", "-q", "-b", "side", str(other))
    proc = install(other)
    assert proc.returncode == 0, proc.stderr
    assert (taxonomy_repo.root / ".git" / "hooks" / "pre-commit").is_file()
    # outside this work tree: shown absolute, a path that works from anywhere
    assert str((taxonomy_repo.root / ".git" / "hooks" / "pre-commit").resolve()) in proc.stdout.split()
    (other / BAD).mkdir(parents=True)
    (other / BAD / "qna.yaml").write_text((taxonomy_repo.root / "compositional_skills/writing/haiku/qna.yaml")
                                          .read_text().replace("task_description", "task_descripton"))
    proc = commit(other, "bad in a worktree")
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_a_foreign_hook_is_kept_unless_forced(taxonomy_repo: GitRepo) -> None:
    hook = taxonomy_repo.root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho mine\n")
    proc = install(taxonomy_repo.root)
    assert proc.returncode == 1 and "skipped" in proc.stdout and "--force" in proc.stderr
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    assert (hook.parent / "pre-push").is_file()  # the other hook was still installed
    assert install(taxonomy_repo.root, "--force").returncode == 0
    assert "# labtax-hook" in hook.read_text()


def test_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    proc = install(tmp_path)
    assert proc.returncode == 2 and "not inside a git work tree" in proc.stderr


def test_install_from_a_subfolder_and_commit_from_there(taxonomy_repo: GitRepo) -> None:
    sub = taxonomy_repo.root / "compositional_skills" / "writing"
    proc = install(sub)
    assert proc.returncode == 0, proc.stderr
    assert (taxonomy_repo.root / ".git" / "hooks" / "pre-push").is_file()
    add_leaf(taxonomy_repo, BAD, good=False)
    run(["git", "add", "-A"], cwd=sub)
    proc = run(["git", "commit", "-q", "-m", "from a subfolder"], cwd=sub)
    assert proc.returncode != 0 and f"{BAD}/qna.yaml" in proc.stdout + proc.stderr


def test_the_repository_hooks_are_the_installed_script() -> None:
    # hooks/pre-commit and hooks/pre-push (for `git config core.hooksPath hooks` in a clone of
    # labtax) are the very script install-hooks copies, not a second copy that could drift
    script = (ROOT / "labtax/scaffold/hooks/labtax-hook.sh").resolve()
    for name in ("pre-commit", "pre-push"):
        assert (ROOT / "hooks" / name).resolve() == script
    assert script.stat().st_mode & stat.S_IXUSR
