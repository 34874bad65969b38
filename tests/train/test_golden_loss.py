"""Golden numbers: the tiny model's first training losses on the fixed fixture data.

The tiny model's weights come from its config and seed 42, the data from `make_data_dir(seed=0)`, the
order from the training seed: the losses are a function of the code. A change to the chat template
handling, the loss masks, packing, the loss reduction or the optimizer moves them; float noise
(summation order, a different CPU) stays within the tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_fixtures import step_records

from labtax.train.config import load_config
from labtax.train.phases import run_training

torch.set_num_threads(1)

GOLDEN_KNOWLEDGE = [10.784785, 10.631286, 10.294537]  # per optimizer step (8 samples each)
GOLDEN_TEST_LOSS = 9.988163  # test.jsonl after the epoch


def test_tiny_model_losses_are_the_golden_numbers(data_dir: Path, tmp_path: Path) -> None:
    config = load_config(overrides={"lr": 3e-3, "epochs": 1, "effective_batch": 8, "warmup_steps": 2,
                                    "max_seq_len": 512, "max_tokens_per_batch": 1024})
    summary = run_training(data_dir, "tiny", tmp_path / "run", ["knowledge"], config, select="loss",
                           log=lambda s: None)
    losses = [s["loss"] for s in step_records(tmp_path / "run" / "knowledge" / "metrics.jsonl")]
    test_loss = summary["phases"]["knowledge"]["checkpoints"][-1]["test_loss"]
    assert losses == pytest.approx(GOLDEN_KNOWLEDGE, abs=2e-3)
    assert test_loss == pytest.approx(GOLDEN_TEST_LOSS, abs=2e-3)
