"""Rules beyond the schema: warnings by default, errors under --strict, and disabled by config."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.taxonomy.config import Config
from labtax.taxonomy.leaves import validate

EXAMPLES = Path(__file__).parent / "examples" / "good"
SKILL = (EXAMPLES / "compositional_skills/writing/poetry/haiku/qna.yaml").read_text()
GROUNDED = (EXAMPLES / "compositional_skills/extraction/business_figures/qna.yaml").read_text()
KNOWLEDGE = (EXAMPLES / "knowledge/science/biology/photosynthesis/qna.yaml").read_text()
SHA = "0123456789abcdef0123456789abcdef01234567"


def check(tmp_path: Path, text: str, rel: str = "compositional_skills/a/qna.yaml", config: Config | None = None,
          attribution: str | None = "Source: test\n") -> list[tuple[str, str, str]]:
    leaf = tmp_path / rel
    leaf.parent.mkdir(parents=True, exist_ok=True)
    leaf.write_text(text)
    if attribution is not None:
        (leaf.parent / "attribution.txt").write_text(attribution)
    return [(f.rule, f.severity, f.yaml_path) for f in validate(tmp_path, None, config or Config())]


def test_same_question_two_answers_warns(tmp_path: Path) -> None:
    text = SKILL.replace("Write a haiku about a lighthouse at night.", "Write a haiku about the first snow of winter.")
    found = check(tmp_path, text)
    assert ("duplicate-question", "warning", "seed_examples[1].question") in found
    strict = check(tmp_path, text, config=Config(strict=True))
    assert ("duplicate-question", "error", "seed_examples[1].question") in strict


def test_knowledge_duplicate_question_across_contexts(tmp_path: Path) -> None:
    text = KNOWLEDGE.replace("What by-product is released?", "Where does photosynthesis take place?")
    found = check(tmp_path, text, "knowledge/bio/qna.yaml")
    assert ("duplicate-question", "warning", "seed_examples[1].questions_and_answers[1].question") in found


def test_grounded_skill_with_missing_context_warns(tmp_path: Path) -> None:
    lines = GROUNDED.split("\n")
    start = next(i for i, line in enumerate(lines) if "The store sold" in line) - 1
    del lines[start:start + 2]
    text = "\n".join(lines).replace("    question: How many bicycles", "  - question: How many bicycles")
    found = check(tmp_path, text)
    assert ("grounded-context", "warning", "seed_examples[1]") in found
    assert not [f for f in found if f[1] == "error"]


@pytest.mark.parametrize(
    ("repo", "ok"),
    [
        ("https://github.com/org/docs.git", True), ("ssh://git@host/org/docs.git", True),
        ("git@github.com:org/docs.git", True), ("git://host/docs.git", True), ("file:///srv/docs", True),
        (".documents/photosynthesis", True), ("docs/repo", True),
        ("http://insecure.example/docs.git", False), ("ftp://x/y", False), ("../outside", False),
        ("/abs/path", False), ("not a url at all", True),  # a relative path, even with spaces, stays inside
    ],
)
def test_document_repo(tmp_path: Path, repo: str, ok: bool) -> None:
    text = KNOWLEDGE.replace("https://github.com/example/biology-notes.git", repo)
    found = check(tmp_path, text, "knowledge/bio/qna.yaml")
    assert (("document-repo", "warning", "document.repo") not in found) == ok, found


@pytest.mark.parametrize(("commit", "ok"), [(SHA, True), (SHA.upper(), True), ("'0123456'", False), ("main", False)])
def test_document_commit_full_sha(tmp_path: Path, commit: str, ok: bool) -> None:
    found = check(tmp_path, KNOWLEDGE.replace(SHA, commit), "knowledge/bio/qna.yaml")
    assert (("document-commit", "warning", "document.commit") not in found) == ok


@pytest.mark.parametrize("pattern", ["../x/*.md", "/etc/*", "~/notes.md", "C:/docs/*.md", "a/../../b.md", "**/../x.md", "https://x/y.md"])
def test_document_patterns_cannot_leave_the_repository(tmp_path: Path, pattern: str) -> None:
    found = check(tmp_path, KNOWLEDGE.replace("photosynthesis/*.md", f"'{pattern}'"), "knowledge/bio/qna.yaml")
    assert ("document-pattern", "error", "document.patterns[0]") in found


@pytest.mark.parametrize("pattern", ["*.md", "docs/**/*.md", "a/./b.md", "a/../b.md"])
def test_relative_patterns_are_fine(tmp_path: Path, pattern: str) -> None:
    found = check(tmp_path, KNOWLEDGE.replace("photosynthesis/*.md", f"'{pattern}'"), "knowledge/bio/qna.yaml")
    assert not [f for f in found if f[0] == "document-pattern"]


def test_word_limits(tmp_path: Path) -> None:
    long_context = " ".join(["word"] * 501)
    text = KNOWLEDGE.replace("Photosynthesis takes place in the chloroplasts of plant cells.", long_context, 1)
    found = check(tmp_path, text, "knowledge/bio/qna.yaml")
    assert ("word-limit", "warning", "seed_examples[0].context") in found
    long_answer = " ".join(["word"] * 260)
    found = check(tmp_path, SKILL.replace("Steam curls from the cup,", long_answer), "compositional_skills/b/qna.yaml")
    assert ("word-limit", "warning", "seed_examples[2]") in found


def test_skill_total_seed_words(tmp_path: Path) -> None:
    answer = " ".join(["word"] * 240)
    seeds = "".join(f"  - question: Question number {i}?\n    answer: {answer}\n" for i in range(10))
    text = SKILL.split("seed_examples:")[0] + "seed_examples:\n" + seeds
    found = check(tmp_path, text)
    assert ("word-limit", "warning", "seed_examples") in found


def test_attribution_required_from_version_2(tmp_path: Path) -> None:
    assert ("attribution", "error", "") in check(tmp_path, SKILL, attribution=None)
    assert ("attribution", "error", "") in check(tmp_path / "b", SKILL, attribution="  \n")
    v1 = "created_by: x\ntask_description: t\nseed_examples:\n- question: q\n  answer: a\n"
    assert check(tmp_path / "c", v1, attribution=None) == []


def test_knowledge_version_one_clear_error(tmp_path: Path) -> None:
    for i, declared in enumerate(("version: 1\n", "version: 2\n", "")):
        text = KNOWLEDGE.replace("version: 3\n", declared)
        root = tmp_path / str(i)
        leaf = root / "knowledge/bio/qna.yaml"
        found = check(root, text, "knowledge/bio/qna.yaml")
        assert found == [("knowledge-version", "error", "version")], found
        [finding] = validate(root, None)
        assert finding.message == "knowledge requires version 3" and leaf.exists()


def test_config_disables_rules_by_pattern(tmp_path: Path) -> None:
    text = KNOWLEDGE.replace(SHA, "main").replace("https://github.com/example/biology-notes.git", "http://x/y")
    found = check(tmp_path, text, "knowledge/bio/qna.yaml", config=Config(disable=("document-*",)))
    assert found == []


def test_lint_rules_are_warnings_on_version_1(tmp_path: Path) -> None:
    v1 = "created_by: x \ntask_description: t\nseed_examples:\n- question: q\n  answer: a"
    found = check(tmp_path, v1, attribution=None)
    assert {(r, s) for r, s, _ in found} == {("yaml-trailing-space", "warning"), ("yaml-final-newline", "warning")}
