"""The `labtax train` command: exit codes, one-line errors, and `--select eval` with labtax.eval."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from train_fixtures import invoke_cli

from labtax.cli import cli


@pytest.fixture
def data_dir(short_data_dir: Path) -> Path:
    """Short answers (conftest.short_data_dir): nothing here depends on how many tokens a sample has."""
    return short_data_dir


def test_missing_data_is_exit_2_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "none"), "--model", "tiny",
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "phase1_knowledge.jsonl not found" in result.output and "Traceback" not in result.output


def test_bad_config_file_is_exit_2(data_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("knowledge:\n  epochs: -1\n")
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--model", "tiny", "--output",
                                      str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 2 and "bad value for epochs" in result.output


def test_locked_output_is_exit_4(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--model", "tiny", "--output", str(out)])
    assert result.exit_code == 4 and "another labtax train run" in result.output


def test_select_eval_uses_labtax_eval_score_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke_cli(["train", "--data", str(data_dir), "--model", "tiny", "--output", str(out), "--phase",
                         "knowledge", "--select", "eval", "--epochs", "2", "--effective-batch", "24", "--lr", "3e-3",
                         "--warmup-steps", "1", "--max-seq-len", "512", "--max-tokens-per-batch", "1024"])
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "knowledge" / "result.json").read_text())
    scores = [c["score"] for c in summary["checkpoints"]]
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert summary["selected"]["score"] == max(scores)
    assert result.stdout.strip() == summary["selected"]["path"]


def test_an_empty_phase_set_is_skipped_in_a_run_of_both_phases(data_dir: Path, tmp_path: Path) -> None:
    # A taxonomy without knowledge leaves (or a teacher that kept none) yields an empty phase 1 set.
    (data_dir / "phase1_knowledge.jsonl").write_text("")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--model", "tiny", "--output", str(out),
                                      "--max-steps", "1", "--select", "last"])
    assert result.exit_code == 0, result.output
    assert "phase skipped" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["phases"]) == ["skills"]
    assert summary["phases"]["skills"]["start"] == "tiny"

    alone = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--model", "tiny", "--phase", "knowledge",
                                     "--output", str(tmp_path / "k")])
    assert alone.exit_code == 2 and "no usable sample" in alone.output and "Traceback" not in alone.output
