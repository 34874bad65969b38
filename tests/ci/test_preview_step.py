"""The pull-request preview step (hooks/ci-preview.sh): the leaves a pull request adds or changes are
generated and their samples, verdicts and judge calibration land in the job summary. Real git
repositories; the teacher is the real local OpenAI-compatible server (fast) or embedded-small, the
real in-process model (slow)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from cihelpers import HOOKS, add_leaf, run
from gitrepo import GitRepo
from openai_server import OpenAIServer, Reply, lab_responder


def _pull_request(repo: GitRepo) -> tuple[str, str, str, str]:
    """main with one leaf; a pull request that changes nothing there and adds two leaves."""
    add_leaf(repo, "compositional_skills/writing/haiku")
    base = repo.commit("haiku")
    limerick = add_leaf(repo, "compositional_skills/writing/limerick", topic="limerick")
    sonnet = add_leaf(repo, "compositional_skills/writing/sonnet", topic="sonnet")
    repo.write("README.md", "not a leaf\n")
    head = repo.commit("two new leaves")
    return base, head, limerick, sonnet


def _preview(repo: GitRepo, tmp_path: Path, base: str, head: str, **env: str) -> tuple[int, str, str]:
    summary = tmp_path / "summary.md"
    summary.write_text("")
    proc = run([str(HOOKS / "ci-preview.sh")], cwd=repo.root, env={
        "LABTAX_BASE": base, "LABTAX_HEAD": head, "LABTAX_OUTPUT": str(tmp_path / "preview"),
        "GITHUB_STEP_SUMMARY": str(summary), "LABTAX_PREVIEW_SAMPLES": "2", **env})
    return proc.returncode, proc.stdout + proc.stderr, summary.read_text()


def test_the_changed_leaves_are_previewed_with_their_verdicts(git_repo: GitRepo, tmp_path: Path,
                                                              openai_server: OpenAIServer) -> None:
    base, head, limerick, sonnet = _pull_request(git_repo)
    text = lab_responder()

    def respond(kind: str, body: dict[str, Any]) -> Any:
        system = body["messages"][0]["content"]
        if "STAGE: judge_question" in system:  # a judge that keeps everything: it separates nothing
            return Reply("keep", top_logprobs=[{"keep": math.log(0.9), "drop": math.log(0.1)}])
        return text(kind, body)

    openai_server.responder = respond
    # The workflow's teacher is embedded; the test points the same step at the local server.
    rc, out, summary = _preview(git_repo, tmp_path, base, head,
                                LABTAX_ARGS=f"--teacher openai --endpoint {openai_server.base_url} --model test-model")
    assert rc == 0, out
    assert "2 changed leaf/leaves" in out
    assert f"### `{limerick}`" in summary and f"### `{sonnet}`" in summary
    assert "haiku" not in summary  # unchanged by the pull request
    assert "| judge_question | unusable |" in summary  # its calibration, per leaf
    assert "judge_question: unjudged p=0.9" in summary and "**Sample 1**" in summary
    assert "Teacher `openai:test-model`" in summary  # the teacher that wrote the samples is named
    assert "Question:" in summary and "Answer:" in summary and "```text" in summary


def test_nothing_to_preview(git_repo: GitRepo, tmp_path: Path) -> None:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("haiku")
    git_repo.write("README.md", "docs only\n")
    head = git_repo.commit("docs")
    rc, out, summary = _preview(git_repo, tmp_path, base, head)
    assert rc == 0 and "no leaf changed" in out and "No changed leaf to preview" in summary


def test_teacher_text_cannot_break_out_of_its_fence(tmp_path: Path) -> None:
    import json

    from labtax.sdg.preview import render

    leaf_out = tmp_path / "leaf.jsonl"
    meta = {"question": "```\n# injected heading", "answer": "fine", "scores": {"judge_question": True}}
    leaf_out.write_text(json.dumps({"metadata": meta}) + "\n")
    (tmp_path / "generate-report.json").write_text(json.dumps(
        {"a/qna.yaml": {"teacher": "t", "generated": 1, "kept": 1, "output": str(leaf_out)}}))
    md = render(tmp_path)
    assert "````text\n```\n# injected heading\n````" in md and "judge_question: True" in md


RECORD = """#!{python}
import json, sys
with open({out!r}, "w") as f:
    json.dump(sys.argv[1:], f)
"""


def test_preview_runs_the_embedded_teacher_by_default(git_repo: GitRepo, tmp_path: Path) -> None:
    # The step's own command line, recorded by a stand-in labtax and parsed by the real `generate`:
    # the embedded teacher with the model LABTAX_PREVIEW_MODEL names, the changed leaves only. (This
    # ran embedded-small through the whole preview, 138 s; real generation with embedded-small is
    # tests/sdg/test_embedded_verdicts.py's, the summary of a preview the test above checks.)
    import json

    import click

    from labtax.cli import cli
    from labtax.cli_options import teacher_spec

    base, head, limerick, sonnet = _pull_request(git_repo)
    recorder = tmp_path / "labtax"
    recorder.write_text(RECORD.format(python=sys.executable, out=str(tmp_path / "argv.json")))
    recorder.chmod(0o755)
    rc, out, summary = _preview(git_repo, tmp_path, base, head, LABTAX=str(recorder),
                                LABTAX_PREVIEW_MODEL="embedded-small", LABTAX_ARGS="--max-tokens 96")
    assert rc == 0, out
    assert "teacher embedded (embedded-small)" in out and summary.strip()  # the summary is written either way
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[0] == "generate" and sorted(argv[1:3]) == sorted([limerick, sonnet])
    command = cli.commands["generate"]
    params = command.make_context("generate", argv[1:], parent=click.Context(cli, info_name="labtax")).params
    spec = teacher_spec(params)
    assert (spec.teacher, spec.model) == ("embedded", "embedded-small")
    assert params["max_tokens"] == 96 and params["samples_per_leaf"] == 2  # the workflow's args come last
