"""The options every command shares: `--taxonomy` defaults to the work tree root, teacher options alike."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gitrepo import GitRepo

from labtax.cli import cli
from labtax.cli_options import generation_settings, teacher_spec
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


def _params(command: str, *args: str) -> dict:  # type: ignore[type-arg]
    """click's parsed options of `labtax COMMAND ARGS`, as the command body receives them."""
    import click

    return cli.commands[command].make_context(command, list(args), parent=click.Context(cli, info_name="labtax")).params


def test_policies_come_from_the_flags() -> None:
    # Unset: enforce and drop for every teacher (no default by teacher name, since the teacher
    # engineer's calibration finds an unusable judge); the flags always win.
    embedded = generation_settings(_params("generate", "--seed", "7"))
    assert (embedded.judges, embedded.unreadable_verdicts, embedded.seed) == ("enforce", "drop", 7)
    forced = generation_settings(_params("diff-generate", "--teacher", "openai", "--judges", "advisory",
                                         "--keep-unreadable-verdicts"))
    assert (forced.judges, forced.unreadable_verdicts) == ("advisory", "keep")
    # every knob of generation_options reaches the settings (the command line builds them, typed)
    knobs = generation_settings(_params("generate", "--samples-per-leaf", "3", "--chunk-tokens", "64",
                                        "--wordings-per-fact", "4", "--document-reader", "builtin"))
    assert (knobs.samples_per_leaf, knobs.chunk_tokens, knobs.wordings_per_fact, knobs.document_reader) == \
        (3, 64, 4, "builtin")


def test_an_endpoint_needs_the_openai_teacher() -> None:
    from labtax.errors import UsageError

    with pytest.raises(UsageError, match="--endpoint needs --teacher openai"):
        teacher_spec(_params("generate", "--endpoint", "http://127.0.0.1:1"))
    spec = teacher_spec(_params("generate", "--teacher", "openai", "--endpoint", "http://x", "--retries", "1"))
    assert spec == TeacherSpec(teacher="openai", endpoints=("http://x",), retries=1)
