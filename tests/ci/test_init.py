"""`labtax init`: the pre-commit config, the workflow callers and `.labtax.yaml` it writes, never
overwriting without --force; its default local pre-commit hook run by the real pre-commit, offline;
and examples/ kept equal to what it writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cihelpers import ROOT, VENV_BIN, add_leaf, run
from gitrepo import GitRepo

from labtax.scaffold.init import InitOptions, planned_files
from labtax.taxonomy.config import load_config

WRITTEN = (
    ".pre-commit-config.yaml",
    ".github/workflows/labtax-validate.yml",
    ".github/workflows/labtax-generate.yml",
    ".labtax.yaml",
)


def init(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([str(VENV_BIN / "labtax"), "init", *args], cwd=cwd)


def test_init_writes_every_file_and_a_second_run_changes_nothing(git_repo: GitRepo) -> None:
    proc = init(git_repo.root)
    assert proc.returncode == 0, proc.stderr
    for rel in WRITTEN:
        assert (git_repo.root / rel).is_file(), rel
        assert f"created      {rel}" in proc.stdout
    again = init(git_repo.root)
    assert again.returncode == 0 and again.stdout.count("unchanged") == len(WRITTEN)


def test_init_from_a_subfolder_writes_at_the_top(git_repo: GitRepo) -> None:
    sub = git_repo.root / "compositional_skills" / "writing"
    sub.mkdir(parents=True)
    assert init(sub).returncode == 0
    assert (git_repo.root / ".labtax.yaml").is_file() and not (sub / ".labtax.yaml").exists()


def test_existing_files_are_kept_unless_forced(git_repo: GitRepo) -> None:
    mine = git_repo.write(".pre-commit-config.yaml", "repos: []\n")
    proc = init(git_repo.root)
    assert proc.returncode == 0
    assert "skipped      .pre-commit-config.yaml" in proc.stdout and "--force" in proc.stdout
    assert mine.read_text() == "repos: []\n"
    assert (git_repo.root / ".labtax.yaml").is_file()  # the rest was still written
    proc = init(git_repo.root, "--force")
    assert "overwritten  .pre-commit-config.yaml" in proc.stdout
    assert "labtax-validate" in mine.read_text()


def test_repository_and_ref_options_are_used(git_repo: GitRepo) -> None:
    assert init(git_repo.root, "--labtax-repository", "acme/labtax", "--labtax-ref", "abc123").returncode == 0
    config = yaml.safe_load((git_repo.root / ".pre-commit-config.yaml").read_text())
    assert config["repos"][0]["repo"] == "https://github.com/acme/labtax"
    assert config["repos"][0]["rev"] == "abc123"
    caller = yaml.safe_load((git_repo.root / ".github/workflows/labtax-validate.yml").read_text())
    assert caller["jobs"]["validate"]["uses"] == "acme/labtax/.github/workflows/validate.yml@abc123"
    assert caller["jobs"]["validate"]["with"]["labtax-ref"] == "abc123"


def test_generated_files_are_valid_for_their_tools(git_repo: GitRepo) -> None:
    assert init(git_repo.root).returncode == 0
    workflows = sorted(str(p) for p in (git_repo.root / ".github/workflows").glob("*.yml"))
    lint = subprocess.run([str(VENV_BIN / "actionlint"), *workflows], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout
    check = run([str(VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"], cwd=git_repo.root)
    assert check.returncode == 0, check.stdout + check.stderr
    # every setting is commented out: labtax reads it as the defaults ...
    assert load_config(git_repo.root) == load_config(git_repo.root / "nowhere")
    # ... and uncommenting the validate block gives a valid configuration too
    text = (git_repo.root / ".labtax.yaml").read_text()
    block = [line.replace("# ", "", 1) for line in text.splitlines()
             if line.startswith(("# validate:", "#   "))][:5]
    (git_repo.root / ".labtax.yaml").write_text("\n".join(block) + "\n")
    config = load_config(git_repo.root)
    assert config.strict is False and config.max_file_bytes == 1048576 and config.source


def test_the_default_hook_is_local_and_matches_the_published_one(git_repo: GitRepo) -> None:
    assert init(git_repo.root).returncode == 0
    repos = yaml.safe_load((git_repo.root / ".pre-commit-config.yaml").read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"] and "rev" not in repos[0]
    (local,) = repos[0]["hooks"]
    published = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hook = published[local["id"]]
    # the same command on the same files as the hook labtax publishes; only how labtax is found differs
    for key in ("name", "entry", "files", "types", "types_or"):
        assert local[key] == hook[key], key
    assert local["language"] == "system" and hook["language"] == "python"


@pytest.mark.skipif(not (VENV_BIN / "pre-commit").exists(), reason="pre-commit is not installed in this venv")
def test_the_default_pre_commit_config_runs_offline_with_the_installed_labtax(git_repo: GitRepo,
                                                                            tmp_path: Path) -> None:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    assert init(git_repo.root).returncode == 0
    git_repo.git("add", "-A")
    # No network, no labtax repository: pre-commit installs nothing for a `system` hook.
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home"), "PRE_COMMIT_COLOR": "never",
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9"}
    pre_commit = [str(VENV_BIN / "pre-commit"), "run", "--all-files"]
    proc = subprocess.run(pre_commit, cwd=git_repo.root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "labtax validate" in proc.stdout and "Passed" in proc.stdout
    add_leaf(git_repo, "compositional_skills/writing/broken", good=False)
    git_repo.git("add", "-A")
    proc = subprocess.run(pre_commit, cwd=git_repo.root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "broken/qna.yaml" in proc.stdout, proc.stdout + proc.stderr


def test_the_hook_it_names_is_declared_by_labtax() -> None:
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    declared = {hook["id"] for hook in manifest}
    for path in (ROOT / "examples/.pre-commit-config.yaml",):
        config = yaml.safe_load(path.read_text())
        used = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
        assert used and used <= declared, (used, declared)


def test_examples_are_what_init_writes() -> None:
    # examples/ is the copy-ready form of the templates; keep them from drifting apart
    for planned in planned_files(InitOptions()):
        if planned.relpath == ".labtax.yaml":
            continue
        example = ROOT / "examples" / planned.relpath.replace(".github/workflows/", "workflows/")
        assert example.read_text() == planned.content, example


def test_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    proc = init(tmp_path)
    assert proc.returncode == 2 and "git init" in proc.stderr
    assert not (tmp_path / ".labtax.yaml").exists()
