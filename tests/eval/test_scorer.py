"""The batched log-likelihood scorer against slow, obvious references."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from labtax.eval.data import Example, read_test_set
from labtax.eval.encoding import completion_text, encode
from labtax.eval.scorer import (
    mean_over_leaves,
    score_checkpoint,
    score_encoded,
    score_leaves,
)
from labtax.models import load_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return load_model("tiny"), load_tokenizer("tiny")


def _reference(model: Any, tokenizer: Any, example: Example) -> tuple[float, int]:
    """One example, unbatched, full logits, the textbook way."""
    enc = encode(tokenizer, example)
    ids = torch.tensor([enc.prompt_ids + enc.target_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(enc.prompt_ids)
    total = sum(float(logp[start - 1 + k, t]) for k, t in enumerate(enc.target_ids))
    return total, len(enc.target_ids)


def test_only_the_answer_and_end_of_turn_are_scored(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    ex = Example("l", (("user", "What is the capital of France?"),), "Paris is the capital.")
    prompt, completion = completion_text(tokenizer, ex)
    assert prompt.endswith("<|im_start|>assistant\n") and "Paris" not in prompt
    assert completion == "Paris is the capital.<|im_end|>"
    enc = encode(tokenizer, ex)
    assert tokenizer.decode(enc.target_ids) == completion
    assert enc.target_ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_batched_equals_one_at_a_time_reference(tiny: tuple[Any, Any], eval_data: Path) -> None:
    model, tokenizer = tiny
    examples = read_test_set(eval_data / "test.jsonl")
    batched = score_leaves(model, tokenizer, examples, batch_tokens=512, max_batch=3)
    full_logits = score_leaves(model, tokenizer, examples, fast_head=False)
    for leaf, exs in examples.items():
        refs = [_reference(model, tokenizer, ex) for ex in exs]
        ref_lp, ref_tokens = sum(r[0] for r in refs), sum(r[1] for r in refs)
        assert batched[leaf].tokens == full_logits[leaf].tokens == ref_tokens
        assert batched[leaf].examples == len(exs)
        assert batched[leaf].logprob == pytest.approx(ref_lp, rel=1e-5)
        assert full_logits[leaf].logprob == pytest.approx(ref_lp, rel=1e-5)
        assert batched[leaf].mean_logprob == pytest.approx(ref_lp / ref_tokens, rel=1e-5)
    # An untrained 49k-vocabulary model is close to uniform: about ln(49152) nats per token.
    assert all(8.0 < s.nll < 13.0 for s in batched.values())


def test_scores_do_not_depend_on_batch_composition(tiny: tuple[Any, Any], eval_data: Path) -> None:
    model, tokenizer = tiny
    examples = read_test_set(eval_data / "test.jsonl")
    items = [encode(tokenizer, ex) for exs in examples.values() for ex in exs]
    one = score_encoded(model, items, max_batch=1)
    many = score_encoded(model, items, max_batch=64, batch_tokens=100_000)
    for a, b in zip(one, many):
        assert a.tokens == b.tokens
        assert a.logprob == pytest.approx(b.logprob, rel=1e-5)


def test_long_prompts_are_cut_from_the_left(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    ex = Example("l", (("user", "word " * 500),), "short answer")
    enc = encode(tokenizer, ex, max_len=64)
    assert enc.length == 64
    assert tokenizer.decode(enc.target_ids) == "short answer<|im_end|>"


def test_score_checkpoint_is_the_mean_over_leaves(tiny: tuple[Any, Any], eval_data: Path, tmp_path: Path) -> None:
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    value = score_checkpoint(tmp_path / "ckpt", eval_data)
    scores = score_leaves(model, tokenizer, read_test_set(eval_data / "test.jsonl"))
    assert value == pytest.approx(mean_over_leaves(scores), rel=1e-6)
    assert value == pytest.approx(sum(s.mean_logprob for s in scores.values()) / 2, rel=1e-6)
    assert math.isfinite(value) and value < 0
