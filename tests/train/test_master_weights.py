"""fp32 master weights: a bf16 start model (a bf16 checkpoint, or phase 2 starting from phase 1's bf16
checkpoint) still trains fp32 parameters with fp32 AdamW moments (issue 23 item 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from labtax.models import load_model, load_tokenizer
from labtax.train.config import load_config
from labtax.train.phases import run_training


@pytest.fixture
def data_dir(short_data_dir: Path) -> Path:
    """Short answers (conftest.short_data_dir): nothing here depends on how many tokens a sample has."""
    return short_data_dir


def dtype_records(phase_dir: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (phase_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == "dtypes"]


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def test_a_bf16_checkpoint_trains_fp32_params_and_moments_at_the_skills_lr(data_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "bf16-start"
    load_model("tiny").to(torch.bfloat16).save_pretrained(start)
    load_tokenizer("tiny").save_pretrained(start)
    assert next(iter(_weights(start).values())).dtype == torch.bfloat16
    config = load_config(overrides={"lr": 6e-6, "warmup_steps": 0, "max_steps": 1, "effective_batch": 4,
                                    "max_seq_len": 512, "max_tokens_per_batch": 1024})
    run_training(data_dir, str(start), tmp_path / "run", ["knowledge"], config, select="last",
                 log=lambda s: None, save_dtype="fp32")
    (record,) = dtype_records(tmp_path / "run" / "knowledge")
    assert record == {"event": "dtypes", "step": 1, "params": ["float32"], "grads": ["float32"],
                      "optimizer": ["float32"], "compute": "float32", "fused_adamw": True,
                      "attention": ["per_sample_sdpa"]}
    # The point of the master copy: one AdamW step at 6e-6 moves (nearly) every weight, where bf16
    # parameters would round most of those updates away.
    (checkpoint,) = (tmp_path / "run" / "knowledge" / "checkpoints").iterdir()
    before, after = _weights(start), _weights(checkpoint)
    moved = sum(int((after[k] != before[k].float()).sum()) for k in after)
    total = sum(t.numel() for t in after.values())
    assert moved / total > 0.9, moved / total


def test_phase_2_from_a_bf16_phase_1_checkpoint_trains_in_fp32(data_dir: Path, tmp_path: Path) -> None:
    config = load_config(overrides={"max_steps": 1, "effective_batch": 4, "max_seq_len": 512,
                                    "max_tokens_per_batch": 1024})
    summary = run_training(data_dir, "tiny", tmp_path / "run", ["knowledge", "skills"], config, select="last",
                           log=lambda s: None, save_dtype="bf16")
    phase1 = Path(summary["phases"]["knowledge"]["selected"]["path"])
    assert {t.dtype for t in _weights(phase1).values()} == {torch.bfloat16}
    assert summary["phases"]["skills"]["start"] == str(phase1)
    for phase in ("knowledge", "skills"):
        (record,) = dtype_records(tmp_path / "run" / phase)
        assert record["params"] == record["grads"] == record["optimizer"] == ["float32"], (phase, record)
