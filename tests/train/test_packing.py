"""Packing is exact (a packed row computes what each sample computes alone) and plans are sound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labtax.train.data import IGNORE
from labtax.train.packing import collate, epoch_order, first_fit_decreasing, plan_step


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    from labtax.models import load_model

    torch.manual_seed(0)
    return load_model("tiny", seed=3)


def test_packed_row_logits_equal_each_sample_alone(tiny: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    lengths = [9, 1, 31, 2, 17]
    samples = [(rng.integers(0, 49152, n).astype(np.int32), np.full(n, IGNORE, np.int32)) for n in lengths]
    batch = collate(samples, packed=True, pad_id=2)
    assert batch["input_ids"].shape == (1, sum(lengths))
    with torch.no_grad():
        packed = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for ids, _ in samples:
            alone = tiny(input_ids=torch.from_numpy(ids.astype(np.int64))[None], use_cache=False).logits[0]
            torch.testing.assert_close(packed[start:start + len(ids)], alone, atol=1e-5, rtol=0)
            start += len(ids)
        # Control: the same row without restarting positions would attend across samples.
        leaky = tiny(input_ids=batch["input_ids"], use_cache=False).logits[0]
        assert (leaky[10:41] - packed[10:41]).abs().max() > 1e-2


def test_padded_bins_match_samples_alone(tiny: torch.nn.Module) -> None:
    rng = np.random.default_rng(1)
    samples = [(rng.integers(0, 49152, n).astype(np.int32), np.full(n, IGNORE, np.int32)) for n in (5, 12, 3)]
    batch = collate(samples, packed=False, pad_id=2)
    with torch.no_grad():
        out = tiny(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], use_cache=False).logits
        for row, (ids, _) in enumerate(samples):
            alone = tiny(input_ids=torch.from_numpy(ids.astype(np.int64))[None], use_cache=False).logits[0]
            torch.testing.assert_close(out[row, : len(ids)], alone, atol=1e-5, rtol=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=60), st.integers(100, 300), st.integers(1, 4))
def test_plan_covers_each_sample_once_within_budget(lengths: list[int], capacity: int, world: int) -> None:
    lens = np.asarray(lengths)
    loss = np.ones_like(lens)
    plan = plan_step(np.arange(len(lens)), lens, loss, capacity, world)
    seen = sorted(i for rank in plan.micro_batches for mb in rank for i in mb)
    assert seen == list(range(len(lens)))
    assert len({len(rank) for rank in plan.micro_batches}) == 1  # same number of passes on every rank
    for rank in plan.micro_batches:
        for mb in rank:
            assert lens[mb].sum() <= capacity
    assert plan.tokens == lens.sum() and plan.loss_tokens == len(lens)


def test_first_fit_decreasing_fills_bins() -> None:
    lengths = np.asarray([60, 50, 40, 30, 20, 10, 90])
    bins = first_fit_decreasing(list(range(7)), lengths, 100)
    assert sorted(int(lengths[b].sum()) for b in bins) == [100, 100, 100]


def test_epoch_order_is_seeded() -> None:
    assert np.array_equal(epoch_order(50, 7, 2), epoch_order(50, 7, 2))
    assert not np.array_equal(epoch_order(50, 7, 2), epoch_order(50, 7, 3))
    assert sorted(epoch_order(50, 7, 2).tolist()) == list(range(50))


def test_fused_chunked_head_matches_plain_cross_entropy(tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    from labtax.train import lm_loss

    monkeypatch.setattr(lm_loss, "CHUNK", 7)  # several chunks, one of them ragged
    rng = np.random.default_rng(2)
    ids = torch.from_numpy(rng.integers(0, 49152, 40))[None]
    targets = torch.from_numpy(rng.integers(0, 49152, 40))[None]
    targets[0, ::3] = IGNORE
    pos = torch.arange(40)[None]
    module = lm_loss.TrainModule(tiny)
    assert module.fused
    loss, n = module(ids, pos, targets)
    loss.backward()
    fused_grads = [p.grad.clone() for p in tiny.parameters()]
    tiny.zero_grad()
    logits = tiny(input_ids=ids, position_ids=pos, use_cache=False).logits[0]
    plain = F.cross_entropy(logits, targets[0], ignore_index=IGNORE, reduction="sum")
    plain.backward()
    assert int(n) == int((targets != IGNORE).sum())
    torch.testing.assert_close(loss, plain, atol=1e-4, rtol=1e-5)
    for fused, p in zip(fused_grads, tiny.parameters()):
        torch.testing.assert_close(fused, p.grad, atol=1e-5, rtol=1e-4)
    tiny.zero_grad()
