"""`labtax eval --base tiny` scores the very weights `labtax train --model tiny` starts from."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_eval_takes_the_teachers_dtype_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """eval loads through compute.choose_for/load like the teacher and chat: bf16-fp32 (the 1.5B's
    choice on an AVX2 CPU) keeps bf16 weights, computes fp32, and scores like fp32 on those weights."""
    from labtax import compute
    from labtax.eval.scorer import score_encoded

    monkeypatch.setenv(compute.ENV, compute.MIXED)
    options = EvalOptions(base="tiny", candidate="tiny", data_dir=Path("."), device="cpu")
    mixed = load_for_eval("tiny", options)
    assert compute.compute_dtype(mixed) == torch.float32
    assert {p.dtype for n, p in mixed.named_parameters() if n.endswith("proj.weight")} == {torch.bfloat16}
    monkeypatch.setenv(compute.ENV, "fp32")
    exact = load_for_eval("tiny", options)
    for p in exact.parameters():
        p.data = p.data.bfloat16().float()
    from labtax.eval.encoding import Encoded

    items = [Encoded(prompt_ids=[1, 5, 9, 20, 33], target_ids=[40, 41, 7]),
             Encoded(prompt_ids=[1, 5, 9, 21], target_ids=[8, 2])]
    got, want = score_encoded(mixed, items), score_encoded(exact, items)
    assert all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(got, want))
