"""The API the other stages call: find_leaves, parse_leaf, load_leaf, validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.errors import LabtaxError
from labtax.taxonomy import Leaf, find_leaves
from labtax.taxonomy.leaves import LeafError, load_leaf, parse_leaf, validate

GOOD = Path(__file__).parent / "examples" / "good"


def test_find_leaves_sorted_and_only_exact_names(tmp_path: Path) -> None:
    for rel in ("knowledge/b/qna.yaml", "compositional_skills/a/qna.yaml", "foundational_skills/c/d/qna.yaml",
                "compositional_skills/x/qna.yml", "other/qna.yaml", "knowledge/.hidden/qna.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a: 1\n")
    (tmp_path / "knowledge/dir/qna.yaml").mkdir(parents=True)
    assert find_leaves(tmp_path) == ["compositional_skills/a/qna.yaml", "foundational_skills/c/d/qna.yaml",
                                     "knowledge/b/qna.yaml"]


def test_find_leaves_on_examples() -> None:
    leaves = find_leaves(GOOD)
    assert leaves == sorted(leaves) and len(leaves) >= 10 and all(p.endswith("/qna.yaml") for p in leaves)


def test_parse_leaf_gives_data_version_kind_positions() -> None:
    rel = "knowledge/science/biology/photosynthesis/qna.yaml"
    leaf = parse_leaf(rel, (GOOD / rel).read_bytes())
    assert isinstance(leaf, Leaf)
    assert (leaf.kind, leaf.version, leaf.path) == ("knowledge", 3, rel)
    assert leaf.data["domain"] == "Biology"
    assert leaf.positions["seed_examples[0].context"][0] > 1
    assert leaf.leaf_dir == "knowledge/science/biology/photosynthesis"


def test_load_leaf_and_grounded_flag() -> None:
    leaf = load_leaf(GOOD, "compositional_skills/extraction/business_figures/qna.yaml")
    assert leaf.grounded and leaf.version == 3
    v1 = load_leaf(GOOD, "compositional_skills/legacy/v1_minimal/qna.yaml")
    assert v1.version == 1 and not v1.grounded


@pytest.mark.parametrize(
    ("rel", "data", "rule"),
    [
        ("compositional_skills/a/qna.yaml", b"a: [", "yaml-syntax"),
        ("compositional_skills/a/qna.yaml", b"- 1\n", "yaml-not-mapping"),
        ("compositional_skills/a/qna.yaml", b"version: '3'\n", "version"),
        ("knowledge/a/qna.yaml", b"version: 2\n", "knowledge-version"),
        ("elsewhere/qna.yaml", b"version: 3\n", "leaf-location"),
        ("compositional_skills/a/qna.yaml", b"\xff", "encoding"),
    ],
)
def test_parse_leaf_raises_leaf_error_with_findings(rel: str, data: bytes, rule: str) -> None:
    with pytest.raises(LeafError) as info:
        parse_leaf(rel, data)
    assert isinstance(info.value, LabtaxError)
    assert info.value.findings[0].rule == rule
    assert rel in str(info.value)


def test_load_leaf_missing_file_is_a_leaf_error(tmp_path: Path) -> None:
    with pytest.raises(LeafError) as info:
        load_leaf(tmp_path, "knowledge/none/qna.yaml")
    assert info.value.findings[0].rule == "file-unreadable"


def test_validate_paths_relative_to_root() -> None:
    rel = "compositional_skills/writing/poetry/haiku/qna.yaml"
    assert validate(GOOD, [rel]) == []
    found = validate(GOOD, ["compositional_skills/writing"])  # a directory expands to its two leaves
    assert [(f.rule, f.severity) for f in found] == [("yaml-newline", "warning")]


def test_validate_is_sorted(tmp_path: Path) -> None:
    bad = Path(__file__).parent / "examples" / "bad"
    findings = validate(bad, None)
    assert findings == sorted(findings, key=lambda f: f.sort_key()) and len(findings) > 20
