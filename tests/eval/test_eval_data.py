"""Reading test.jsonl and manifest.json, and choosing leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fixtures import LEAF_A, LEAF_B, example, manifest, write_jsonl

from labtax.data import leaf_folder as leaf_id
from labtax.errors import UsageError
from labtax.eval.data import manifest_leaves as read_manifest
from labtax.eval.data import read_test_set, select_leaves


def _data(root: Path, leaves: list[str], changed: list[str], dropped: list[str] = ()) -> Path:  # type: ignore[assignment]
    import random

    rng = random.Random(1)
    rows = []
    for leaf in leaves:
        for _ in range(2):
            row = example(rng, LEAF_A)
            row["metadata"]["leaf"] = f"{leaf}/qna.yaml"
            rows.append(row)
    write_jsonl(root / "test.jsonl", rows)
    unchanged = [leaf for leaf in leaves if leaf not in changed]
    (root / "manifest.json").write_text(json.dumps(manifest(changed, unchanged, dropped)))
    return root


def test_leaf_id_matches_folder_and_file_forms() -> None:
    # The folder form of the path labtax writes (the other forms a hand-made normaliser accepted,
    # `a/b/` and `a\\b\\qna.yaml`, are written by nothing: issue 11 dropped it).
    assert leaf_id("a/b/qna.yaml") == "a/b"
    assert leaf_id("a/b") == "a/b"


def test_test_set_is_grouped_by_leaf_in_file_order(eval_data: Path) -> None:
    by_leaf = read_test_set(eval_data / "test.jsonl")
    assert sorted(by_leaf) == [LEAF_A, LEAF_B]
    assert all(len(v) == 4 for v in by_leaf.values())
    first = by_leaf[LEAF_A][0]
    assert first.prompt[-1][0] == "user" and first.answer.endswith(".")
    assert first.question() == first.prompt[-1][1]


def test_manifest_changed_and_dropped(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(manifest(["x/a"], ["x/b"], ["x/gone"])))
    changed, dropped = read_manifest(tmp_path / "manifest.json")  # type: ignore[misc]
    assert changed == {"x/a"} and dropped == {"x/gone"}
    assert read_manifest(tmp_path / "missing.json") is None


def test_changed_leaves_plus_a_seeded_stable_sample(tmp_path: Path) -> None:
    leaves = [f"skills/l{i:02d}" for i in range(20)]
    data = _data(tmp_path, leaves, changed=["skills/l03", "skills/l07"])
    one = select_leaves(data, sample_unchanged=4, seed=7)
    again = select_leaves(data, sample_unchanged=4, seed=7)
    other = select_leaves(data, sample_unchanged=4, seed=8)
    assert [r.leaf for r in one.leaves if r.changed] == ["skills/l03", "skills/l07"]
    sampled = [r.leaf for r in one.leaves if not r.changed]
    assert len(sampled) == 4 and not {"skills/l03", "skills/l07"} & set(sampled)
    assert one.leaves == again.leaves
    assert [r.leaf for r in other.leaves if not r.changed] != sampled
    assert all(len(one.examples[r.leaf]) == 2 for r in one.leaves)


def test_all_mode_and_dropped_leaves(tmp_path: Path) -> None:
    data = _data(tmp_path, ["s/a", "s/b", "s/c"], changed=["s/a"], dropped=["s/c"])
    selection = select_leaves(data, mode="all")
    assert [(r.leaf, r.changed) for r in selection.leaves] == [("s/a", True), ("s/b", False)]


def test_changed_leaf_without_examples_is_kept_as_empty(tmp_path: Path) -> None:
    data = _data(tmp_path, ["s/a", "s/b"], changed=["s/a", "s/new"])
    selection = select_leaves(data, sample_unchanged=0)
    assert [r.leaf for r in selection.leaves] == ["s/a", "s/new"]
    assert selection.examples["s/new"] == []


@pytest.mark.parametrize("case", ["no-dir", "no-test", "no-manifest", "bad-line", "no-leaves"])
def test_usage_errors(tmp_path: Path, case: str) -> None:
    data = _data(tmp_path / "d", ["s/a"], changed=[])
    if case == "no-dir":
        data = tmp_path / "missing"
    elif case == "no-test":
        (data / "test.jsonl").unlink()
    elif case == "no-manifest":
        (data / "manifest.json").unlink()
    elif case == "bad-line":
        (data / "test.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    with pytest.raises(UsageError):
        select_leaves(data, sample_unchanged=0 if case == "no-leaves" else 5)
