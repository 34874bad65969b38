"""The options every command shares: `--taxonomy` defaults to the work tree root, teacher options alike."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gitrepo import GitRepo

from labtax.cli import cli
from labtax.sdg.settings import GenerationSettings
from labtax.teachers import TeacherSpec

LEAF = """version: 2
task_description: Haiku about the sea.
created_by: tester
seed_examples:
""" + "".join(f"""  - question: Write haiku number {i} about the sea?
    answer: Waves fold into foam number {i}, salt wind sings.
""" for i in range(5))


def test_taxonomy_defaults_to_the_work_tree_root(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.commit("empty")
    git_repo.write("compositional_skills/writing/haiku/qna.yaml", LEAF)
    monkeypatch.chdir(git_repo.root / "compositional_skills" / "writing")
    result = CliRunner().invoke(cli, ["diff", "--base", "main"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "A compositional_skills/writing/haiku/qna.yaml\n"


@pytest.mark.parametrize("command", ["generate", "diff-generate"])
def test_teacher_options_are_the_same_on_every_command(command: str) -> None:
    text = CliRunner().invoke(cli, [command, "--help"]).output
    for option in ("--taxonomy", "--teacher", "--endpoint", "--model", "--api-key-env", "--concurrency",
                   "--completions", "--timeout", "--retries", "--batch-size", "--judges", "--seed"):
        assert option in text, (command, option)


def test_policies_come_from_the_flags() -> None:
    # Unset: enforce and drop for every teacher (no default by teacher name, since the teacher
    # engineer's calibration finds an unusable judge); the flags always win.
    embedded = GenerationSettings.from_options({"teacher": "embedded", "judges": None,
                                                "keep_unreadable_verdicts": None, "seed": 7})
    assert (embedded.judges, embedded.unreadable_verdicts, embedded.seed) == ("enforce", "drop", 7)
    forced = GenerationSettings.from_options({"teacher": "openai", "judges": "advisory",
                                              "keep_unreadable_verdicts": True})
    assert (forced.judges, forced.unreadable_verdicts) == ("advisory", "keep")


def test_an_endpoint_needs_the_openai_teacher() -> None:
    from labtax.errors import UsageError

    with pytest.raises(UsageError, match="--endpoint needs --teacher openai"):
        TeacherSpec.from_options({"teacher": "embedded", "endpoints": ("http://127.0.0.1:1",)})
    assert TeacherSpec.from_options({"teacher": "openai", "endpoints": ["http://x"], "retries": 1}).retries == 1
