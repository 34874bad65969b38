"""The position-aware reader: YAML 1.1 values like PyYAML's safe loader, positions, duplicates, aliases."""

from __future__ import annotations

import datetime
import math
import time

import pytest
import yaml

from labtax.taxonomy.reader import read_yaml


def value(text: str) -> object:
    parsed = read_yaml("f.yaml", text)
    assert parsed.ok, parsed.findings
    return parsed.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: yes", True), ("a: No", False), ("a: on", True), ("a: OFF", False), ("a: y", "y"),
        ("a: 1:30", 90), ("a: -1:30", -90), ("a: 017", 15), ("a: 0x1f", 31), ("a: 0b101", 5), ("a: 1_000", 1000),
        ("a: 1.5", 1.5), ("a: 1:30.5", 90.5), ("a: .inf", math.inf), ("a: ~", None), ("a: null", None),
        ("a: '3'", "3"), ("a: 3", 3), ("a: 3.0", 3.0), ("a: 2024-01-02", datetime.date(2024, 1, 2)),
        ("a: !!str 12", "12"), ("a: 0o17", "0o17"),
    ],
)
def test_yaml_11_scalars_match_pyyaml_safe_load(text: str, expected: object) -> None:
    ours = value(text + "\n")
    theirs = yaml.safe_load(text)
    assert ours == theirs == {"a": expected}
    assert type(ours["a"]) is type(theirs["a"])  # type: ignore[index]


def test_whole_documents_match_pyyaml(tmp_path: object) -> None:
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "examples" / "good").rglob("qna.yaml")):
        text = path.read_text(encoding="utf-8")
        assert value(text) == yaml.safe_load(text), path


def test_positions_are_one_based_line_and_column() -> None:
    parsed = read_yaml("f", "version: 3\nseed_examples:\n  - question: q\n    answer: a\n")
    assert parsed.positions["version"] == (1, 10)
    assert parsed.positions["seed_examples[0].answer"] == (4, 13)
    assert parsed.key_positions["seed_examples[0].answer"] == (4, 5)


def test_duplicate_key_found_with_position_last_wins() -> None:
    parsed = read_yaml("f", "a: 1\nb: 2\na: 3\n")
    assert parsed.ok and parsed.value == {"a": 3, "b": 2}
    [finding] = parsed.findings
    assert (finding.rule, finding.line, finding.col) == ("yaml-duplicate-key", 3, 1)
    assert "line 1" in finding.message


def test_merge_keys_follow_pyyaml() -> None:
    text = "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n"
    assert value(text) == yaml.safe_load(text)


def test_alias_bomb_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.process_time()
    parsed = read_yaml("f", "\n".join(lines) + "\n")
    assert time.process_time() - start < 5  # a generous bound: expansion would take hours
    assert not parsed.ok and parsed.findings[0].rule == "yaml-alias-limit"


def test_small_alias_use_is_fine_and_cycles_refused() -> None:
    assert value("a: &x hi\nb: *x\n") == {"a": "hi", "b": "hi"}
    parsed = read_yaml("f", "a: &x [1, *x]\n")
    assert not parsed.ok and parsed.findings[0].rule == "yaml-alias-limit"


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ("a: [1\n", "yaml-syntax", 2),
        ("a:\n\tb: 1\n", "yaml-tab", 2),
        ("a: !!python/object:os.system x\n", "yaml-tag", 1),
        ("a: !!int nope\n", "yaml-syntax", 1),
        ("", "yaml-empty", 1),
        ("# only a comment\n", "yaml-empty", 1),
        ("a: 1\n---\nb: 2\n", "yaml-syntax", 2),
        ("? [1, 2]\n: x\n", "yaml-key", 1),
        ("a: *nope\n", "yaml-syntax", 1),
    ],
)
def test_unreadable_yaml_gives_one_positioned_finding(text: str, rule: str, line: int) -> None:
    parsed = read_yaml("f", text)
    assert not parsed.ok
    assert [f.rule for f in parsed.findings] == [rule]
    assert parsed.findings[0].line == line and parsed.findings[0].col >= 1


@pytest.mark.parametrize(
    "text",
    ["a: !!int 0o17", "a: !!int 017", "a: !!bool yes", "a: !!float 1:30.5", "a: !!int 1:30", "a: !!null ''",
     "a: !!float .NaN", "a: !!int -0x1f", "a: !!binary aGVsbG8=", "a: !!timestamp 2024-01-02 10:00:00"],
)
def test_explicit_tags_match_pyyaml(text: str) -> None:
    ours, theirs = value(text + "\n"), yaml.safe_load(text)
    if isinstance(theirs["a"], float) and math.isnan(theirs["a"]):
        assert math.isnan(ours["a"])  # type: ignore[index]
    else:
        assert ours == theirs and type(ours["a"]) is type(theirs["a"])  # type: ignore[index]


@pytest.mark.parametrize("text", ["a: !!bool y\n", "a: !!bool n\n", "a: !!int 0o8\n"])
def test_values_pyyaml_refuses_are_findings(text: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - PyYAML raises KeyError or ValueError here
        yaml.safe_load(text)
    parsed = read_yaml("f.yaml", text)
    assert not parsed.ok and parsed.findings[0].rule == "yaml-syntax"
