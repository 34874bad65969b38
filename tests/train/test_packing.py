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


def test_per_sample_attention_matches_each_sample_alone_with_gradients() -> None:
    """labtax_packed attention (sdpa per sample, no dense mask) = the samples trained one by one."""
    from labtax.models import load_model
    from labtax.train import attention
    from labtax.train.lm_loss import TrainModule

    rng = np.random.default_rng(4)
    lengths = [23, 1, 40, 6]
    samples = [(rng.integers(0, 49152, n).astype(np.int32), rng.integers(0, 49152, n).astype(np.int32))
               for n in lengths]
    samples[1][1][:] = IGNORE  # a sample whose one token carries no label
    batch = collate(samples, packed=True, pad_id=2)
    packed_lm = load_model("tiny", seed=5)
    module = TrainModule(packed_lm)
    assert module.packed_attention and packed_lm.config._attn_implementation == attention.NAME
    assert attention.sample_bounds(batch["position_ids"]) == [0, 23, 24, 64, 70]
    calls: list[int] = []
    real = attention.F.scaled_dot_product_attention
    with pytest.MonkeyPatch.context() as mp:  # count the kernel calls: one per sample per layer, all causal
        mp.setattr(attention.F, "scaled_dot_product_attention",
                   lambda *a, **k: calls.append(int(k["is_causal"])) or real(*a, **k))
        loss, n = module(**batch)
    assert calls == [1] * (len(lengths) * packed_lm.config.num_hidden_layers)
    loss.backward()
    alone_lm = load_model("tiny", seed=5)  # plain sdpa, one sample at a time
    assert alone_lm.config._attn_implementation == "sdpa"
    total = torch.zeros(())
    for ids, tgt in samples:
        logits = alone_lm(input_ids=torch.from_numpy(ids.astype(np.int64))[None], use_cache=False).logits[0]
        total = total + torch.nn.functional.cross_entropy(logits, torch.from_numpy(tgt.astype(np.int64)),
                                                          ignore_index=IGNORE, reduction="sum")
    total.backward()
    assert int(n) == sum(int((t != IGNORE).sum()) for _, t in samples)
    torch.testing.assert_close(loss, total, atol=1e-4, rtol=1e-5)
    for (name, p), q in zip(packed_lm.named_parameters(), alone_lm.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)
    # A padded batch (mask given) still runs plain masked sdpa through the same implementation.
    padded = collate(samples[:3], packed=False, pad_id=2)
    with torch.no_grad():
        out = packed_lm(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                        position_ids=padded["position_ids"], use_cache=False).logits
        for row, (ids, _) in enumerate(samples[:3]):
            alone = alone_lm(input_ids=torch.from_numpy(ids.astype(np.int64))[None], use_cache=False).logits[0]
            torch.testing.assert_close(out[row, : len(ids)], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["mlp", "layers"])
def test_activation_checkpointing_keeps_less_and_computes_the_same(mode: str) -> None:
    """Recomputed activations: the same loss and gradients, and fewer bytes kept for the backward."""
    from labtax.models import load_model
    from labtax.train.lm_loss import TrainModule
    from labtax.train.parallel import checkpoint_activations

    rng = np.random.default_rng(6)
    samples = [(rng.integers(0, 49152, n).astype(np.int32), rng.integers(0, 49152, n).astype(np.int32))
               for n in (30, 12, 50)]
    batch = collate(samples, packed=True, pad_id=2)
    runs = {}
    for name in ("none", mode):
        lm = load_model("tiny", seed=7)
        lm.train()
        checkpoint_activations(lm, name)
        module = TrainModule(lm)
        kept: dict[int, int] = {}

        def pack(t: torch.Tensor, kept: dict[int, int] = kept) -> torch.Tensor:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = module(**batch)
        loss.backward()
        weights = {p.untyped_storage().data_ptr() for p in lm.parameters()}
        runs[name] = (float(loss), [p.grad.clone() for p in lm.parameters()],
                      sum(v for k, v in kept.items() if k not in weights))
    assert runs[mode][0] == pytest.approx(runs["none"][0], rel=1e-6)
    for a, b in zip(runs[mode][1], runs["none"][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # At least two [tokens x intermediate] fp32 tensors per layer are no longer kept (the tiny model's
    # saved bytes are dominated by its head's gradient, kept either way).
    config = load_model("tiny", seed=7).config
    floor = 2 * sum(len(s[0]) for s in samples) * config.intermediate_size * 4 * config.num_hidden_layers
    assert runs["none"][2] - runs[mode][2] >= floor
