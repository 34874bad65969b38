"""hooks/ci-run.sh, the composite action's main step: the command line it builds from the action's
inputs, and the validate step end to end (range script, real labtax, annotations capped, the rest
in the job summary) on a simulated pull request."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cihelpers import HOOKS, add_leaf, run
from gitrepo import GitRepo

FAKE = """#!{python}
import json, sys
print(json.dumps(sys.argv[1:]))
sys.exit({code})
"""


def fake_labtax(tmp_path: Path, code: int = 0) -> str:
    path = tmp_path / f"fake-labtax-{code}"
    path.write_text(FAKE.format(python=sys.executable, code=code))
    path.chmod(0o755)
    return str(path)


def ci_run(cwd: Path, tmp_path: Path, **env: str) -> tuple[int, list[str] | None, dict[str, str]]:
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    proc = run([str(HOOKS / "ci-run.sh")], cwd=cwd, env={**env, "GITHUB_OUTPUT": str(out_file)})
    argv = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout.startswith("[") else None
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    return proc.returncode, argv, outputs


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LABTAX_COMMAND": "validate", "LABTAX_BASE": "abc", "LABTAX_FORMAT": "github"},
         ["validate", "--changed", "--base", "abc", "--format", "github"]),
        ({"LABTAX_COMMAND": "validate", "LABTAX_BASE": "empty", "LABTAX_FORMAT": "github",
          "LABTAX_ARGS": "--taxonomy . --strict"},
         ["validate", "--format", "github", "--taxonomy", ".", "--strict"]),
        ({"LABTAX_COMMAND": "diff", "LABTAX_BASE": "abc", "LABTAX_HEAD": "def", "LABTAX_FORMAT": "github"},
         ["diff", "--base", "abc", "--head", "def"]),
        ({"LABTAX_COMMAND": "diff", "LABTAX_BASE": "empty", "LABTAX_FORMAT": "json"},
         ["diff", "--base", "empty", "--format", "json"]),
        ({"LABTAX_COMMAND": "diff-generate", "LABTAX_BASE": "abc", "LABTAX_HEAD": "def",
          "LABTAX_FORMAT": "github", "LABTAX_ARGS": "--teacher openai  --endpoint http://h/v1"},
         ["diff-generate", "--base", "abc", "--head", "def", "--teacher", "openai", "--endpoint", "http://h/v1"]),
        ({"LABTAX_COMMAND": "eval", "LABTAX_FORMAT": "markdown", "LABTAX_ARGS": "--base embedded"},
         ["eval", "--format", "markdown", "--base", "embedded"]),
    ],
)
def test_command_line(tmp_path: Path, env: dict[str, str], expected: list[str]) -> None:
    code, argv, outputs = ci_run(tmp_path, tmp_path, LABTAX=fake_labtax(tmp_path), **env)
    assert (code, argv, outputs) == (0, expected, {"exit-code": "0"})


def test_exit_code_is_kept_and_reported(tmp_path: Path) -> None:
    code, argv, outputs = ci_run(tmp_path, tmp_path, LABTAX=fake_labtax(tmp_path, 3), LABTAX_COMMAND="generate")
    assert code == 3 and argv == ["generate"] and outputs == {"exit-code": "3"}


def test_skip_and_install_run_nothing(tmp_path: Path) -> None:
    for env in ({"LABTAX_COMMAND": "diff-generate", "LABTAX_SKIP": "true", "LABTAX_SKIP_REASON": "deleted"},
                {"LABTAX_COMMAND": "install"}):
        code, argv, outputs = ci_run(tmp_path, tmp_path, LABTAX=fake_labtax(tmp_path, 9), **env)
        assert (code, argv, outputs) == (0, None, {"exit-code": "0"})


def test_validate_step_on_a_pull_request_end_to_end(git_repo: GitRepo, tmp_path: Path) -> None:
    # base: one good leaf and one bad leaf the pull request does not touch
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    add_leaf(git_repo, "compositional_skills/old/broken", good=False)
    base = git_repo.commit("base")
    # the pull request adds 12 bad leaves (more than GitHub's 10 error annotations per step)
    git_repo.git("checkout", "-q", "-b", "pr")
    for i in range(12):
        add_leaf(git_repo, f"compositional_skills/new/leaf{i:02d}", good=False)
    head = git_repo.commit("bad leaves")

    outputs_file = tmp_path / "out"
    summary = tmp_path / "summary.md"
    outputs_file.write_text("")
    env = {"GITHUB_OUTPUT": str(outputs_file), "GITHUB_STEP_SUMMARY": str(summary)}
    # step 1 of the action: the range (pull request: its base sha)
    rng = run([str(HOOKS / "ci-diff-range.sh")], cwd=git_repo.root,
              env={**env, "EVENT_NAME": "pull_request", "PR_BASE_SHA": base, "PR_HEAD_SHA": head})
    assert rng.returncode == 0, rng.stderr
    got = dict(line.split("=", 1) for line in outputs_file.read_text().splitlines())
    # step 2: labtax validate --changed --base <base> --format github
    outputs_file.write_text("")
    proc = run([str(HOOKS / "ci-run.sh")], cwd=git_repo.root,
               env={**env, "LABTAX_COMMAND": "validate", "LABTAX_BASE": got["base"], "LABTAX_FORMAT": "github"})
    assert proc.returncode == 1, proc.stderr
    assert "exit-code=1" in outputs_file.read_text()
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error ")]
    assert 0 < len(errors) <= 10
    assert any(line.startswith("::notice") for line in proc.stdout.splitlines())
    table = summary.read_text()
    for i in range(12):  # every finding reaches the job summary, annotated or not
        assert f"compositional_skills/new/leaf{i:02d}/qna.yaml" in table
    assert "compositional_skills/old/broken" not in proc.stdout + table  # unchanged: not checked


def test_a_pull_request_cannot_relax_the_policy_it_is_validated_against(git_repo: GitRepo, tmp_path: Path) -> None:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("base")
    git_repo.git("checkout", "-q", "-b", "pr")
    git_repo.write(".labtax.yaml", "validate:\n  disable: [attribution]\n")
    add_leaf(git_repo, "compositional_skills/writing/free")
    git_repo.remove("compositional_skills/writing/free/attribution.txt")
    git_repo.commit("relax the policy, add a leaf without attribution")
    outputs_file = tmp_path / "out"
    outputs_file.write_text("")
    env = {"GITHUB_OUTPUT": str(outputs_file), "LABTAX_COMMAND": "validate", "LABTAX_BASE": base,
           "LABTAX_FORMAT": "github"}
    assert run([str(HOOKS / "ci-run.sh")], cwd=git_repo.root, env=env).returncode == 0  # its own policy
    proc = run([str(HOOKS / "ci-run.sh")], cwd=git_repo.root, env={**env, "LABTAX_CONFIG_REF": base})
    assert proc.returncode == 1 and "attribution" in proc.stdout, proc.stdout + proc.stderr
    action = (HOOKS.parent / "action.yml").read_text()
    assert "LABTAX_CONFIG_REF: ${{ inputs.command == 'validate' && github.event.pull_request.base.sha" in action


def test_generation_output_goes_to_the_job_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    proc = run([str(HOOKS / "ci-run.sh")], cwd=tmp_path, env={
        "LABTAX": fake_labtax(tmp_path, 3), "LABTAX_COMMAND": "diff-generate", "LABTAX_BASE": "abc",
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(out_file),
    })
    assert proc.returncode == 3 and "exit-code=3" in out_file.read_text()  # tee keeps the exit code
    assert summary.read_text() == (
        '### labtax diff-generate (exit 3)\n\n```text\n["diff-generate", "--base", "abc"]\n```\n'
    )


def test_sarif_step_writes_the_report_code_scanning_reads(git_repo: GitRepo, tmp_path: Path) -> None:
    # The validate workflow's second labtax step: the same changed leaves, as SARIF into a file.
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("base")
    add_leaf(git_repo, "compositional_skills/new/bad", good=False)
    git_repo.commit("a bad leaf")
    sarif = tmp_path / "labtax-validate.sarif"
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    proc = run([str(HOOKS / "ci-run.sh")], cwd=git_repo.root, env={
        "LABTAX_COMMAND": "validate", "LABTAX_BASE": base, "LABTAX_FORMAT": "sarif",
        "LABTAX_ARGS": f"--taxonomy . --output {sarif}", "GITHUB_OUTPUT": str(out_file)})
    assert proc.returncode == 1 and "exit-code=1" in out_file.read_text(), proc.stderr
    report = json.loads(sarif.read_text())
    assert report["version"] == "2.1.0"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in report["runs"][0]["results"]}
    assert uris == {"compositional_skills/new/bad/qna.yaml"}  # repository-relative, changed leaves only
