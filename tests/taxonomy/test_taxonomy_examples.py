"""The example folders are the compatibility contract: good/** passes, bad/** fails with its rule.

Each bad leaf has an `expect.txt`: the rule id that must be reported at error level, and
`labtax-only` where labtax is stricter than the public `instructlab-schema` package (documented).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.taxonomy import collect_targets
from labtax.taxonomy.config import Config
from labtax.taxonomy.leaves import validate

EXAMPLES = Path(__file__).parent / "examples"
GOOD, BAD = EXAMPLES / "good", EXAMPLES / "bad"


def bad_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for expect in sorted(BAD.rglob("expect.txt")):
        words = expect.read_text().split()
        leaf = next(p for p in expect.parent.iterdir() if p.name.lower().startswith("qna."))
        cases.append((leaf.relative_to(BAD).as_posix(), words[0], "labtax-only" in words))
    return cases


def test_good_examples_have_no_errors() -> None:
    targets = collect_targets(GOOD, None)
    assert len(targets) >= 10
    findings = validate(GOOD, None, Config())
    assert [f for f in findings if f.severity == "error"] == []


def test_good_examples_cover_every_kind_and_version() -> None:
    text = {p: p.read_bytes() for p in GOOD.rglob("qna.yaml")}
    kinds = {p.relative_to(GOOD).parts[0] for p in text}
    assert kinds == {"knowledge", "compositional_skills", "foundational_skills"}
    assert any(b"version: 2" in t for t in text.values()) and any(b"version" not in t for t in text.values())


@pytest.mark.parametrize(("rel", "rule", "labtax_only"), bad_cases(), ids=[c[0] for c in bad_cases()])
def test_bad_example_reports_its_rule(rel: str, rule: str, labtax_only: bool) -> None:
    findings = validate(BAD, [rel], Config())
    errors = {(f.rule, f.path) for f in findings if f.severity == "error"}
    assert (rule, rel) in errors, findings
    for f in findings:
        assert f.line >= 1 and f.col >= 1 and f.message


def test_every_bad_example_is_covered() -> None:
    leaves = {p.relative_to(BAD).as_posix() for p in BAD.rglob("qna.y*ml")}
    assert leaves == {c[0] for c in bad_cases()}
