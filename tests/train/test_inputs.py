"""A phase is keyed by its inputs (issue 22), and checkpoints follow `--save-every` and selection
(issue 20): a used output folder never hands back a result made from other data, model or settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from train_fixtures import step_records

from labtax.errors import InputOutputError
from labtax.train.config import load_config
from labtax.train.loop import save_steps
from labtax.train.phases import run_training

torch.set_num_threads(1)

@pytest.fixture
def data_dir(short_data_dir: Path) -> Path:
    """Short answers (conftest.short_data_dir): these tests count samples, steps and checkpoints."""
    return short_data_dir


FAST = {"lr": 3e-3, "epochs": 1, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 512,
        "max_tokens_per_batch": 1024, "max_steps": 1}


def train(data_dir: Path, out: Path, phases: list[str] | None = None, select: str = "last",
          lines: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    return run_training(data_dir, "tiny", out, phases or ["knowledge"], load_config(overrides={**FAST, **overrides}),
                        select=select, log=(lines.append if lines is not None else lambda s: None))


def test_a_finished_phase_is_reused_only_for_the_same_inputs(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = train(data_dir, out)
    recorded = first["phases"]["knowledge"]["inputs"]
    assert recorded["model"] == "labtax-tiny-llama" and recorded["settings"]["lr"] == 3e-3
    assert len(recorded["data_sha256"]) == 64 and recorded["labtax_version"]

    lines: list[str] = []
    train(data_dir, out, lines=lines, activation_checkpointing="layers")  # how, not what: still done
    assert any("already done" in line for line in lines)

    path = data_dir / "phase1_knowledge.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2]))  # new data, same folder
    lines = []
    again = train(data_dir, out, lines=lines)
    said = [line for line in lines if "starting the phase over" in line]
    assert len(said) == 1 and "data_sha256" in said[0] and not any("already done" in line for line in lines)
    assert again["phases"]["knowledge"]["inputs"]["data_sha256"] != recorded["data_sha256"]
    assert again["phases"]["knowledge"]["data"]["samples"] == first["phases"]["knowledge"]["data"]["samples"] - 2

    lines = []
    train(data_dir, out, lines=lines, lr=1e-3)  # other settings
    assert any("lr 0.003 -> 0.001" in line and "starting the phase over" in line for line in lines)
    metrics = step_records(out / "knowledge" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1]  # the old run's lines went with it


def test_phase_two_retrains_when_phase_one_did(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(data_dir, out, ["knowledge", "skills"])
    lines: list[str] = []
    train(data_dir, out, ["knowledge", "skills"], lines=lines)
    assert sum("already done" in line for line in lines) == 2
    path = data_dir / "phase1_knowledge.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    lines = []
    train(data_dir, out, ["knowledge", "skills"], lines=lines)
    # Phase 2's start checkpoint has the same path as before, but another phase 1 made it.
    assert [line.split("]")[0] for line in lines if "starting the phase over" in line] == ["[knowledge", "[skills"]


def test_an_unfinished_phase_on_other_data_starts_over_instead_of_resuming(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(data_dir, out, max_steps=2, save_every=8)
    (out / "knowledge" / "result.json").unlink()  # as if killed after the last save
    path = data_dir / "phase1_knowledge.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    lines: list[str] = []
    summary = train(data_dir, out, lines=lines, max_steps=2, save_every=8)
    assert any("starting the phase over" in line for line in lines)
    assert not any("resuming" in line for line in lines)
    assert summary["phases"]["knowledge"]["steps"] == 2


def test_save_every_replaces_the_per_epoch_checkpoints() -> None:
    # 24 samples, batches of 8: 3 steps an epoch; 20 epochs.
    assert save_steps(24, 8, 3, 60, 0) == list(range(3, 61, 3))  # 0: one per epoch
    assert save_steps(24, 8, 3, 60, 10**9) == [60]  # asked for one at the end: one, not twenty
    assert save_steps(24, 8, 3, 6, 16) == [2, 4, 6]  # every 16 samples (and the last step)
    assert save_steps(20, 8, 3, 6, 0) == [3, 6]  # an epoch's last step takes the remainder


def test_checkpoints_on_disk_are_those_selection_can_still_choose(data_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    run = train(data_dir, tmp_path / "end", lines=lines, epochs=2, max_steps=0, save_every=10**6)
    assert [c["samples"] for c in run["phases"]["knowledge"]["checkpoints"]] == [48]  # not one an epoch
    assert all(line.endswith("+ 1 checkpoint") for line in lines if "] step " in line)  # none measured yet

    lines = []
    last = train(data_dir, tmp_path / "last", lines=lines, epochs=3, max_steps=0, save_every=0)["phases"]["knowledge"]
    steps = [line for line in lines if "] step " in line]
    # Until a save has been timed the ETA says how many are to come; after, it includes their time.
    assert steps[0].endswith("+ 3 checkpoints") and "checkpoint" not in steps[3]
    on_disk = sorted(p.name for p in (tmp_path / "last" / "knowledge" / "checkpoints").iterdir())
    assert on_disk == ["samples_72"] and last["selected"]["samples"] == 72
    assert [c.get("pruned", False) for c in last["checkpoints"]] == [True, True, False]

    loss = train(data_dir, tmp_path / "loss", ["skills"], select="loss", epochs=3, max_steps=0,
                 save_every=0)["phases"]["skills"]
    best = min(loss["checkpoints"], key=lambda c: c["test_loss"])
    on_disk = [p.name for p in (tmp_path / "loss" / "skills" / "checkpoints").iterdir()]
    assert on_disk == [Path(best["path"]).name] and loss["selected"]["path"] == best["path"]
    state = json.loads((tmp_path / "loss" / "skills" / "state" / "state.json").read_text())
    assert [c.get("pruned", False) for c in state["progress"]["checkpoints"]] == \
        [c.get("pruned", False) for c in loss["checkpoints"]]


def test_a_result_that_is_not_json_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    done = tmp_path / "out" / "knowledge" / "result.json"
    done.parent.mkdir(parents=True)
    done.write_text('{"phase": "knowledge", "sel')  # cut by a full disk
    with pytest.raises(InputOutputError, match="result.json: not readable as JSON"):
        train(data_dir, tmp_path / "out")
