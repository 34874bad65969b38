"""Shared helpers for the diff tests: leaf contents and a small realistic taxonomy in a real git repo."""

from __future__ import annotations

from gitrepo import GitRepo

from labtax.diff import LeafChange, changed_leaves


def skill(topic: str, extra: str = "") -> str:
    """A compositional/foundational skill qna.yaml, long enough for git's rename detection."""
    seeds = "".join(
        f"  - question: What is example {i} about {topic}?\n    answer: Example {i} explains {topic} well.\n"
        for i in range(1, 6)
    )
    return f"version: 3\ncreated_by: tester\ntask_description: Teach {topic}.{extra}\nseed_examples:\n{seeds}"


def knowledge(
    topic: str,
    repo: str = "https://github.com/example/docs",
    patterns: tuple[str, ...] = ("*.md",),
    commit: str = "0123456789abcdef0123456789abcdef01234567",
) -> str:
    """A knowledge qna.yaml whose document block points at `repo` (URL or taxonomy-relative folder)."""
    seeds = "".join(
        f"  - context: Context {i} on {topic}.\n    questions_and_answers:\n"
        + "".join(f"      - question: Q{i}.{j} on {topic}?\n        answer: A{i}.{j}.\n" for j in range(1, 4))
        for i in range(1, 6)
    )
    pats = "".join(f"    - '{p}'\n" for p in patterns)
    return (
        f"version: 3\ncreated_by: tester\ndomain: {topic}\ndocument_outline: All about {topic}.\n"
        f"seed_examples:\n{seeds}document:\n  repo: {repo}\n  commit: {commit}\n  patterns:\n{pats}"
    )


POEMS = "compositional_skills/writing/poems/qna.yaml"
ADD = "foundational_skills/math/addition/qna.yaml"
ROME = "knowledge/history/rome/qna.yaml"
PHYSICS = "knowledge/science/physics/qna.yaml"


def build_taxonomy(repo: GitRepo, prefix: str = "") -> str:
    """Commit a small taxonomy on main (under `prefix`), then branch `feature`. Returns the main SHA."""
    p = prefix
    repo.write(f"{p}{POEMS}", skill("poems"))
    repo.write(f"{p}compositional_skills/writing/poems/attribution.txt", "Title: poems\nLicense: CC-BY\n")
    repo.write(f"{p}{ADD}", skill("addition"))
    repo.write(f"{p}{ROME}", knowledge("rome"))
    repo.write(f"{p}knowledge/history/rome/attribution.txt", "Title: rome\n")
    repo.write(f"{p}{PHYSICS}", knowledge("physics", repo="docs/physics", patterns=("*.md",)))
    repo.write(f"{p}docs/physics/intro.md", "# Physics\n\nForces and motion.\n")
    repo.write(f"{p}docs/physics/notes.txt", "not a document: the pattern is *.md\n")
    repo.write(f"{p}knowledge/history/rome/extra.yaml", "not: a leaf\n")
    repo.write("README.md", "# taxonomy\n")
    repo.write(".gitignore", "*.tmp\nscratch/\n")
    sha = repo.commit("initial taxonomy")
    repo.git("checkout", "-q", "-b", "feature")
    return sha


def compact(changes: list[LeafChange]) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    """(letter, path, old_path, reasons) per change: short, exact assertions."""
    return [(c.letter, c.path, c.old_path, c.reasons) for c in changes]


def diff(
    root: object, base: str | None = None, head: str | None = None
) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    return compact(changed_leaves(root, base, head))  # type: ignore[arg-type]
