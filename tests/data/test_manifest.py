"""The manifest record: built whole (a field left out fails where it is built), written and read back
equal, the JSON on disk in the shape earlier labtax versions wrote and read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtax.data import (
    FaultSummary,
    GenerationStats,
    LeafEntry,
    Manifest,
    RunSummary,
    SetFile,
    read_manifest,
    write_manifest,
)
from labtax.data.manifest import MultipleChoice
from labtax.errors import UsageError

KNOWLEDGE_STATS = {"quota": 6, "requests_wanted": 9, "max_requests_bound": True, "request_limit": 4, "chunks": 2,
                   "chunks_asked": 2, "chunks_covered": 2, "facts": 10, "facts_asked": 5, "facts_covered": 3,
                   "facts_with_wordings": 2, "wordings": 1, "seeds_used": 3, "documents": 1, "generated": 12,
                   "kept": 4, "requests": 4, "chunks_sized_by": "teacher tokenizer",
                   "document_readers": {"text": 1}, "funnel": {"asked": 12, "parsed": 10, "kept": 4},
                   "dropped": {"facts_not_in_chunk": 2}, "prompt_tokens": 900, "stages": {"qa": {}},
                   "mc": {"generated": 4, "kept": 1, "dropped": {"mc_key_not_in_chunk": 3}},
                   "calibration": {"faithful": {"status": "calibrated", "auc": 0.9, "threshold": 0.4,
                                                "good": [0.9], "broken": [0.1]}}}


def _manifest() -> Manifest:
    gen = GenerationStats.from_stats(KNOWLEDGE_STATS)
    return Manifest(
        base="b" * 40, head="a" * 40, base_ref="main", head_ref="HEAD", teacher_model="teacher-x",
        settings={"seed": 1}, mix={"system_prompt": ""},
        sets={"test.jsonl": SetFile(3, 120, "c" * 64, 17)}, fingerprint="f" * 64,
        leaves=(LeafEntry("knowledge/a/qna.yaml", "k" * 64, "knowledge", "generated", True, {"train": 8}, 90, 1.5,
                          generation=gen),
                LeafEntry("skills/b/qna.yaml", "j" * 64, "compositional_skills", "reused", False, {}, 0, 0.0),
                LeafEntry("skills/c/qna.yaml", None, "compositional_skills", "invalid", True, {}, 0, 0.0,
                          error="bad yaml"),
                LeafEntry("skills/d/qna.yaml", "d" * 64, "compositional_skills", "dropped", False, {}, 0, 0.0)),
        run=RunSummary(4, 2, 90, 1.23456, FaultSummary(1, 0, 2, {"timeout": 1})),
        phase1_steps={"short": 3, "long": 2},
    )


def test_a_manifest_written_and_read_back_is_equal_and_its_encoding_stable(tmp_path: Path) -> None:
    m = _manifest()
    write_manifest(tmp_path, m)
    back = read_manifest(tmp_path)
    assert back is not None
    assert back.to_json() == m.to_json()
    (tmp_path / "again").mkdir()
    write_manifest(tmp_path / "again", back)
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (tmp_path / "manifest.json").read_bytes()


def test_the_json_on_disk_keeps_the_shape_readers_and_earlier_versions_know(tmp_path: Path) -> None:
    write_manifest(tmp_path, _manifest())
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert set(data) == {"format", "base", "head", "base_ref", "head_ref", "teacher_model", "settings", "mix", "sets",
                         "fingerprint", "leaves", "run", "phase1_steps"}
    generated, reused, invalid, dropped = data["leaves"]
    # A leaf with data carries its funnel, a failed or invalid one its error, a dropped one neither.
    assert "generation" in generated and "error" not in generated
    assert reused["generation"] == {} and "error" not in reused
    assert invalid["error"] == "bad yaml" and "generation" not in invalid
    assert not {"generation", "error"} & set(dropped)
    gen = generated["generation"]
    # The manifest keeps the volume numbers, funnel, drops, mc and calibration, not the per-stage detail.
    assert "stages" not in gen and "prompt_tokens" not in gen
    assert gen["calibration"] == {"faithful": {"status": "calibrated", "auc": 0.9, "threshold": 0.4}}
    assert gen["mc"] == {"generated": 4, "kept": 1, "dropped": {"mc_key_not_in_chunk": 3}}
    assert gen["max_requests_bound"] is True and gen["funnel"] == {"asked": 12, "parsed": 10, "kept": 4}
    assert data["run"] == {"requests_sent": 4, "requests_replayed": 2, "tokens": 90, "seconds": 1.235,
                           "faults": {"retried": 1, "failed": 0, "unreadable": 2, "reasons": {"timeout": 1}}}
    assert data["sets"]["test.jsonl"] == {"samples": 3, "bytes": 120, "sha256": "c" * 64, "mtime_ns": 17}


def test_a_field_left_out_fails_where_the_manifest_is_built() -> None:
    with pytest.raises(TypeError, match="fingerprint"):
        Manifest(base=None, head=None, base_ref=None, head_ref=None, teacher_model="t",  # type: ignore[call-arg]
                 settings={}, mix={}, sets={}, leaves=(), run=RunSummary(0, 0, 0, 0.0, FaultSummary()))
    with pytest.raises(TypeError, match="seconds"):
        LeafEntry("x/qna.yaml", None, "knowledge", "generated", True, {}, 0)  # type: ignore[call-arg]


def test_a_hand_written_manifest_reads_with_empty_values_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"head": None, "leaves": [{"path": "k/qna.yaml", "changed": True, "status": "generated"}]}))
    m = read_manifest(tmp_path)
    assert m is not None and m.sets == {} and m.run.faults.clean and m.leaves[0].changed
    assert m.leaves[0].has_data and m.leaves[0].generation is None and m.system_prompt is None
    (tmp_path / "manifest.json").write_text(json.dumps({"leaves": [], "sets": 5}))
    assert read_manifest(tmp_path) is None
    with pytest.raises(UsageError, match="not a labtax manifest"):
        read_manifest(tmp_path / "manifest.json", strict=True)


def test_generation_stats_read_by_attribute() -> None:
    gen = GenerationStats.from_stats(KNOWLEDGE_STATS)
    assert gen.mc == MultipleChoice(4, 1, {"mc_key_not_in_chunk": 3})
    assert gen.dropped == {"facts_not_in_chunk": 2} and gen.facts_covered == 3
    assert GenerationStats.from_stats({"kept": 0}).to_json() == {"kept": 0}
