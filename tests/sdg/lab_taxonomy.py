"""Builders for small, valid LAB taxonomies in real git repositories (diff-generate tests, bench)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

ATTRIBUTION = "Title of work: test\nLink to work: https://example.com\nLicense of the work: CC-BY-4.0\nCreator names: Test\n"


def skill_yaml(name: str, *, seeds: int = 5, grounded: bool = False, topic: str = "") -> str:
    topic = topic or name
    lines = ["version: 2", "created_by: tester", f"task_description: Answer questions about {topic}",
             "seed_examples:"]
    for i in range(seeds):
        lines.append(f"  - question: What is fact number {i} about {topic}?")
        lines.append(f"    answer: Fact number {i} about {topic} is that it is interesting in way {i}.")
        if grounded:
            lines.append(f"    context: A paragraph of background about {topic}, part {i}.")
    return "\n".join(lines) + "\n"


def knowledge_yaml(name: str, doc_dir: str) -> str:
    lines = ["version: 3", "created_by: tester", f"domain: {name}",
             f"document_outline: Facts about {name}", "seed_examples:"]
    for i in range(5):
        lines.append(f"  - context: The {name} report, section {i}, describes item {i} in detail.")
        lines.append("    questions_and_answers:")
        for j in range(3):
            lines.append(f"      - question: What does section {i} say about point {j} of {name}?")
            lines.append(f"        answer: Section {i} says point {j} of {name} matters.")
    lines += ["document:", f"  repo: {doc_dir}", "  commit: '" + "0" * 40 + "'", "  patterns:", "    - '*.md'"]
    return "\n".join(lines) + "\n"


def add_skill(repo: Any, path: str, **kw: Any) -> str:
    """Write a skill leaf at `<path>/qna.yaml` (+ attribution); returns the qna.yaml path."""
    repo.write(f"{path}/qna.yaml", skill_yaml(path.rsplit("/", 1)[-1], **kw))
    repo.write(f"{path}/attribution.txt", ATTRIBUTION)
    return f"{path}/qna.yaml"


def add_knowledge(repo: Any, path: str, *, doc: str | None = None) -> str:
    name = path.rsplit("/", 1)[-1]
    doc_dir = f".documents/{name}"
    repo.write(f"{doc_dir}/{name}.md", doc or (
        f"# {name}\n\nThe {name} archive holds records of harbors and lanterns.\n\n"
        f"Its second paragraph explains how {name} glaciers move across meadows.\n"))
    repo.write(f"{path}/qna.yaml", knowledge_yaml(name, doc_dir))
    repo.write(f"{path}/attribution.txt", ATTRIBUTION)
    return f"{path}/qna.yaml"


def teacher_args(server: Any, *, samples: int = 2, seed: int = 7) -> list[str]:
    return ["--teacher", "openai", "--endpoint", server.base_url, "--model", "test-model",
            "--samples-per-leaf", str(samples), "--seed", str(seed), "--concurrency", "4"]


def run_cli(args: Sequence[str]) -> tuple[int, str]:
    """Run `labtax ARGS` in-process; (exit code, stdout + stderr)."""
    from labtax.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def copy_generated(repo: Path, out: Path, tmp_path: Path) -> tuple[Any, Path]:
    """A test's own copies of a repository and of the output folder a run generated from it (store,
    ledger, sets), under tmp_path: (GitRepo, output). Milliseconds, where generating again costs a
    test ~0.5 CPU-s; a module-scoped fixture generates once."""
    import shutil

    from gitrepo import GitRepo

    shutil.copytree(repo, tmp_path / "repo", symlinks=True)
    shutil.copytree(out, tmp_path / "out", symlinks=True)
    return GitRepo(tmp_path / "repo"), tmp_path / "out"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def manifest(output: Path) -> dict[str, Any]:
    return json.loads((output / "manifest.json").read_text(encoding="utf-8"))


def prompts_of(server: Any) -> list[str]:
    """All the text of every request the server received."""
    return ["\n".join(str(m.get("content", "")) for m in r.body.get("messages", [])) for r in server.requests]
