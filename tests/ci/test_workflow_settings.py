"""The generate workflow reads `.labtax.yaml`: its generation inputs default to empty, so the
taxonomy's `generate:` section applies and only an input the caller sets overrides it (issue 15).

The labtax step's `args` are taken from .github/workflows/generate.yml itself, its `${{ }}`
expressions evaluated for the caller's inputs (the forms the file uses, and no other: an unknown
form fails the test), then run as the action runs them (hooks/ci-run.sh, the real `labtax
diff-generate`, the real local OpenAI-protocol server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from cihelpers import HOOKS, ROOT, add_leaf, run
from gitrepo import GitRepo

WORKFLOW = ROOT / ".github" / "workflows" / "generate.yml"
REF = r"(?P<ctx>inputs|secrets|github)\.(?P<name>[\w-]+)"
FORMS = [  # the expression forms generate.yml's args use
    re.compile(rf"^{REF}$"),
    re.compile(rf"^{REF} != '' && format\('(?P<template>[^']*)', (?P=ctx)\.(?P=name)\) \|\| ''$"),
    re.compile(rf"^{REF} != '' && '(?P<text>[^']*)' \|\| ''$"),
]


def evaluate(expr: str, contexts: dict[str, dict[str, str]]) -> str:
    for form in FORMS:
        m = form.match(expr.strip())
        if m is None:
            continue
        value = str(contexts[m["ctx"]].get(m["name"], ""))
        if "template" in form.groupindex:
            return m["template"].replace("{0}", value) if value != "" else ""
        if "text" in form.groupindex:
            return m["text"] if value != "" else ""
        return value
    raise AssertionError(f"generate.yml uses an expression form this test does not evaluate: {expr}")


def workflow_inputs() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return (data.get("on") or data[True])["workflow_call"]["inputs"]


def labtax_args(caller: dict[str, str], secrets: dict[str, str], workspace: Path) -> list[str]:
    """The labtax step's args as GitHub renders them for a caller that set `caller` (the inputs it
    did not set take the workflow's defaults)."""
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["generate"]
    step = next(s for s in job["steps"] if s.get("uses") == "./.labtax")
    inputs = {name: str(spec.get("default", "")) for name, spec in workflow_inputs().items()}
    contexts = {"inputs": {**inputs, **caller}, "secrets": secrets, "github": {"workspace": str(workspace)}}
    text = re.sub(r"\$\{\{(.*?)\}\}", lambda m: evaluate(m[1], contexts), step["with"]["args"])
    return text.split()


def generate(repo: GitRepo, out: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run([str(HOOKS / "ci-run.sh")], cwd=repo.root, env={
        "LABTAX_COMMAND": "diff-generate", "LABTAX_BASE": "empty", "LABTAX_HEAD": repo.head(),
        "LABTAX_ARGS": " ".join(args), **(env or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "manifest.json").read_text())


def test_generation_inputs_default_to_empty() -> None:
    inputs = workflow_inputs()
    for name in ("teacher", "endpoint", "samples-per-leaf", "seed", "max-tokens"):
        assert inputs[name]["default"] == "" and inputs[name]["type"] == "string", name


def test_the_workflow_takes_labtax_yaml_and_a_set_input_overrides_it(git_repo: GitRepo, tmp_path: Path,
                                                                      openai_server: Any) -> None:
    add_leaf(git_repo, "compositional_skills/writing/haiku")
    git_repo.write(".labtax.yaml", yaml.safe_dump({"generate": {
        "teacher": "openai", "endpoints": [openai_server.base_url], "samples_per_leaf": 2, "seed": 7,
        "max_tokens": 64}}))
    git_repo.commit("taxonomy with its generation settings")

    # A caller that sets nothing (and no key: the server needs none): everything from .labtax.yaml.
    args = labtax_args({}, {}, tmp_path)
    assert not {"--teacher", "--samples-per-leaf", "--seed", "--max-tokens", "--api-key-env"} & set(args)
    settings = generate(git_repo, tmp_path / "labtax-out", args)["settings"]
    assert (settings["samples_per_leaf"], settings["seed"], settings["max_tokens"]) == (2, 7, 64)
    assert openai_server.count() > 0

    # Inputs the caller sets win over the file; the rest still comes from it.
    (tmp_path / "set").mkdir()
    args = labtax_args({"samples-per-leaf": "3", "seed": "9"}, {"teacher-api-key": "sk-x"}, tmp_path / "set")
    assert "--api-key-env" in args
    manifest = generate(git_repo, tmp_path / "set" / "labtax-out", args, {"LABTAX_TEACHER_API_KEY": "sk-x"})
    settings = manifest["settings"]
    assert (settings["samples_per_leaf"], settings["seed"], settings["max_tokens"]) == (3, 9, 64)
    assert manifest["teacher_model"] == "openai:test-model"
