"""Issue 23: under torchrun the start model is read by rank 0 alone; the other ranks build it on the
meta device and receive their shards from rank 0. The result must equal a one-process load."""

from __future__ import annotations

import json
from pathlib import Path

import dist_load_probe
import torch
from safetensors.torch import load_file
from train_fixtures import fork_call, free_port, rank_env

from labtax.models import build_tiny_model, load_model, load_tokenizer


def test_two_ranks_load_a_model_folder_equal_to_one_process(tmp_path: Path) -> None:
    folder = tmp_path / "start"
    build_tiny_model(seed=3).save_pretrained(folder)  # safetensors, tied embeddings: what rank 0 reads
    load_tokenizer("tiny").save_pretrained(folder)
    out = tmp_path / "out"
    out.mkdir()
    # Two ranks as torchrun would start them (its variables), each a process forked from this one
    # (train_fixtures.fork_call): the load is the property, not a fresh interpreter's ~7 CPU-s of imports.
    port = free_port()

    def probe() -> int:
        dist_load_probe.main(str(folder), out)
        return 0

    ranks = [fork_call(probe, tmp_path / f"rank{r}.log", rank_env(r, 2, port)) for r in (0, 1)]
    assert [rank.wait() for rank in ranks] == [0, 0], [rank.output()[-3000:] for rank in ranks]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["meta_before_shard"] for r in ranks] == [False, True]  # rank 1 read no weights
    assert all(r["tied"] for r in ranks)  # the head is still the embedding after sharding
    reference = load_model(str(folder), dtype=torch.float32)
    got = load_file(str(out / "weights.safetensors"))
    expected = {k: v for k, v in reference.state_dict().items() if k != "lm_head.weight"}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == torch.float32, key  # fp32 master weights
        assert torch.equal(got[key], value), key
    # Buffers (rotary inv_freq is in no state dict) come out as a one-process load makes them.
    for rank in (0, 1):
        buffers = load_file(str(out / f"buffers{rank}.safetensors"))
        assert buffers
        for key, value in reference.named_buffers():
            assert torch.equal(buffers[f"buffer/{key}"], value), (rank, key)


def test_a_meta_rank_builds_fp32_master_weights_from_a_bf16_checkpoint(tmp_path: Path) -> None:
    """Phase 2 starts from phase 1's bf16 checkpoint on a GPU: the meta ranks must build fp32
    parameters, as rank 0's fp32 load has, or FSDP2 would shard bf16 masters beside fp32 ones."""
    from labtax.train.parallel import meta_model

    model = build_tiny_model(seed=3).to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    built = meta_model(str(tmp_path / "bf16"), seed=0)
    assert {p.dtype for p in built.parameters()} == {torch.float32}
    assert all(t.is_meta for t in [*built.parameters(), *built.buffers()])  # nothing read, nothing allocated
    assert built.lm_head.weight is built.model.embed_tokens.weight
