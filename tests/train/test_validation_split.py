"""Checkpoint selection (`--select loss`) measures the validation split, never the eval gate's test split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from train_fixtures import make_data_dir, make_sample, write_jsonl

from labtax.errors import UsageError
from labtax.train.config import load_config
from labtax.train.phases import held_out_file, run_training, why_no_validation

FAST = {"lr": 3e-3, "epochs": 2, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 512,
        "max_tokens_per_batch": 1024}


def test_loss_selection_reads_validation_not_test(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path / "data", validation=False, long_words=12)
    assert held_out_file(data) == data / "test.jsonl"  # data mixed before the validation split
    rng = random.Random(5)
    write_jsonl(data / "validation.jsonl", [make_sample(rng, "knowledge/history/rivers", 12) for _ in range(4)])
    # A test split the loss would choke on if it were read: a line that is not a sample.
    (data / "test.jsonl").write_text("{not json\n")
    assert held_out_file(data) == data / "validation.jsonl"
    lines: list[str] = []
    summary = run_training(data, "tiny", tmp_path / "run", ["knowledge"], load_config(overrides=FAST),
                           select="loss", log=lines.append)
    phase = summary["phases"]["knowledge"]
    assert phase["held_out"] == "validation.jsonl"
    losses = [c["test_loss"] for c in phase["checkpoints"]]
    assert all(loss is not None for loss in losses) and phase["selected"]["test_loss"] == min(losses)
    assert not any("eval gate's test split" in line for line in lines)


def test_without_a_validation_split_loss_selection_refuses_the_test_set_unless_asked(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path / "data", validation=False, long_words=12)
    with pytest.raises(UsageError, match="eval gate's own test items") as refused:
        run_training(data, "tiny", tmp_path / "run", ["knowledge"], load_config(overrides=FAST), select="loss",
                     log=lambda s: None)
    assert "no validation.jsonl and no manifest.json" in str(refused.value)  # why there is none
    assert "--select-on-test" in str(refused.value)
    lines: list[str] = []
    summary = run_training(data, "tiny", tmp_path / "run", ["knowledge"], load_config(overrides=FAST),
                           select="loss", log=lines.append, select_on_test=True)
    assert summary["phases"]["knowledge"]["held_out"] == "test.jsonl"
    assert any("no validation.jsonl" in line and "eval gate's test split" in line for line in lines)


def test_the_reason_for_a_missing_validation_split_comes_from_the_manifest(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path / "data", validation=False, long_words=12)
    sets = {name: {"samples": 1} for name in ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl")}
    (data / "manifest.json").write_text(json.dumps({"leaves": [], "sets": sets}))
    assert "held no rows out" in why_no_validation(data)
    # The manifest lists a validation split (and a step set) that did not come along: refused, whatever
    # --select, since the steps would silently train as one and selection would use the test set.
    sets["validation.jsonl"] = sets["phase1_knowledge_step1.jsonl"] = {"samples": 1}
    (data / "manifest.json").write_text(json.dumps({"leaves": [], "sets": sets}))
    with pytest.raises(UsageError, match="phase1_knowledge_step1.jsonl, validation.jsonl, missing from"):
        run_training(data, "tiny", tmp_path / "run", ["knowledge"], load_config(overrides=FAST), select="last",
                     log=lambda s: None)
