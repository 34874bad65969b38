"""`labtax eval --base tiny` scores the very weights `labtax train --model tiny` starts from."""

from __future__ import annotations

from pathlib import Path

import torch

from labtax.eval.run import EvalOptions, load_for_eval
from labtax.models import load_model
from labtax.train.config import load_config


def test_eval_builds_the_tiny_model_train_starts_from() -> None:
    seed = load_config().seed  # what `labtax train` passes to load_model (train/defaults.yaml)
    trained_from = load_model("tiny", seed=seed).state_dict()
    evaluated = load_for_eval("tiny", EvalOptions(base="tiny", candidate="tiny", data_dir=Path("."),
                                                  device="cpu")).state_dict()
    assert trained_from.keys() == evaluated.keys()
    assert all(torch.equal(trained_from[k], evaluated[k]) for k in trained_from)
    other = load_for_eval("tiny", EvalOptions(base="tiny", candidate="tiny", data_dir=Path("."), device="cpu",
                                              tiny_seed=seed + 1)).state_dict()
    assert not all(torch.equal(trained_from[k], other[k]) for k in trained_from)
