"""Issue 23: under torchrun the start model is read by rank 0 alone; the other ranks build it on the
meta device and receive their shards from rank 0. The result must equal a one-process load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from train_fixtures import REPO

from labtax.models import build_tiny_model, load_model, load_tokenizer


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests' / 'train'}",
           "LABTAX_TORCHRUN": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300, check=False)


def test_two_ranks_load_a_model_folder_equal_to_one_process(tmp_path: Path) -> None:
    folder = tmp_path / "start"
    build_tiny_model(seed=3).save_pretrained(folder)  # safetensors, tied embeddings: what rank 0 reads
    load_tokenizer("tiny").save_pretrained(folder)
    out = tmp_path / "out"
    out.mkdir()
    run = _torchrun(str(REPO / "tests" / "train" / "dist_load_probe.py"), str(folder), str(out))
    assert run.returncode == 0, run.stderr[-3000:]
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
