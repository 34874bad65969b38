"""The generate workflow's step end to end: a simulated push event through hooks/ci-diff-range.sh,
then hooks/ci-run.sh running the real `labtax diff-generate` against a real OpenAI-compatible server
on 127.0.0.1 (tests/openai_server.py), with the key passed the way the workflow passes the secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cihelpers import HOOKS, add_leaf, run
from gitrepo import GitRepo

ZERO = "0" * 40
KEY = "sk-test-never-printed"


def push_step(repo: GitRepo, tmp_path: Path, server: Any, before: str, after: str) -> dict[str, Any]:
    """What the action does for `command: diff-generate, base: auto` on a push event."""
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    rng = run([str(HOOKS / "ci-diff-range.sh")], cwd=repo.root,
              env={"EVENT_NAME": "push", "BEFORE": before, "AFTER": after, "GITHUB_OUTPUT": str(outputs)})
    assert rng.returncode == 0, rng.stderr
    got = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    outputs.write_text("")
    sent_before = server.count()
    args = (f"--taxonomy . --output {tmp_path / 'out'} --teacher openai --endpoint {server.base_url} "
            "--api-key-env LABTAX_TEACHER_API_KEY --samples-per-leaf 2 --seed 42 --max-tokens 64")
    proc = run([str(HOOKS / "ci-run.sh")], cwd=repo.root, env={
        "LABTAX_COMMAND": "diff-generate", "LABTAX_BASE": got["base"], "LABTAX_HEAD": got["head"],
        "LABTAX_FORMAT": "github", "LABTAX_ARGS": args, "LABTAX_SKIP": got["skip"],
        "LABTAX_TEACHER_API_KEY": KEY, "GITHUB_OUTPUT": str(outputs),
    })
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    return {"range": got, "requests": server.count() - sent_before, "manifest": manifest,
            "leaves": {leaf["path"]: leaf["status"] for leaf in manifest["leaves"]}}


def skills(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "out" / "phase2_skills.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_pushes_generate_only_what_changed(git_repo: GitRepo, tmp_path: Path, openai_server: Any) -> None:
    haiku = add_leaf(git_repo, "compositional_skills/writing/haiku")
    c1 = git_repo.commit("haiku")

    # first push of the branch: before is all zeros, every leaf is generated
    first = push_step(git_repo, tmp_path, openai_server, ZERO, c1)
    assert first["range"]["base"] == "empty" and first["requests"] > 0
    assert first["leaves"] == {haiku: "generated"}
    assert skills(tmp_path), "the training set has samples"
    for name in ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl", "manifest.json"):
        assert (tmp_path / "out" / name).is_file()  # what the workflow uploads
    auth = {r.headers.get("Authorization") or r.headers.get("authorization") for r in openai_server.requests}
    assert auth == {f"Bearer {KEY}"}  # the secret reached the teacher through --api-key-env

    # a normal push adding one leaf: only that leaf is generated
    limerick = add_leaf(git_repo, "compositional_skills/writing/limerick", topic="limerick")
    c2 = git_repo.commit("limerick")
    second = push_step(git_repo, tmp_path, openai_server, c1, c2)
    assert second["range"]["base"] == c1 and second["requests"] > 0
    assert second["leaves"] == {haiku: "reused", limerick: "generated"}

    # a force push replacing the limerick by a sonnet: diffed from the fork point (c1)
    git_repo.git("reset", "-q", "--hard", c1)
    sonnet = add_leaf(git_repo, "compositional_skills/writing/sonnet", topic="sonnet")
    c3 = git_repo.commit("sonnet instead")
    third = push_step(git_repo, tmp_path, openai_server, c2, c3)
    assert third["range"]["base"] == c1
    # the limerick is gone from the new history: its data leaves the training sets
    assert third["leaves"] == {haiku: "reused", sonnet: "generated", limerick: "dropped"}
    assert not [s for s in skills(tmp_path) if "limerick" in json.dumps(s["metadata"])]
    assert [s for s in skills(tmp_path) if "sonnet" in json.dumps(s["metadata"])]

    # the same push again: nothing to generate, zero teacher calls
    again = push_step(git_repo, tmp_path, openai_server, c2, c3)
    assert again["requests"] == 0 and set(again["leaves"].values()) == {"reused"}
