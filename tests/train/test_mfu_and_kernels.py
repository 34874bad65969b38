"""GPU speed pieces that can be checked on a CPU (issue 23 item 7): the MFU arithmetic and its
per-step record, which attention path a packed row takes, and (on a GPU only) the varlen kernel
against the per-sample loop."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from labtax.models import load_model
from labtax.train.attention import torch_varlen, varlen_kernel
from labtax.train.config import load_config
from labtax.train.mfu import peak_for_name, step_flops
from labtax.train.phases import run_training


def test_step_flops_counts_weights_and_causal_attention() -> None:
    # 10 parameters, 2 layers of width 4, samples of 3 and 5 tokens:
    # 6*10*8 for the weights, 6*2*4*(9+25) for the causal attention scores.
    assert step_flops(10, 2, 4, [3, 5]) == 6 * 10 * 8 + 6 * 2 * 4 * 34


def test_device_peaks_by_name() -> None:
    assert peak_for_name("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_for_name("NVIDIA H100 PCIe") == 756e12
    assert peak_for_name("NVIDIA H200") == 989e12
    assert peak_for_name("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_for_name("Some Future Accelerator") is None


def test_each_step_reports_mfu_when_the_peak_is_known(data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A CPU has no entry in the table; LABTAX_PEAK_TFLOPS names a peak, as for an unlisted GPU.
    monkeypatch.setenv("LABTAX_PEAK_TFLOPS", "0.001")
    config = load_config(overrides={"max_steps": 2, "effective_batch": 4, "max_seq_len": 512,
                                    "max_tokens_per_batch": 1024})
    run_training(data_dir, "tiny", tmp_path / "run", ["knowledge"], config, select="last", log=lambda s: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "knowledge" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    model = load_model("tiny")
    n = sum(p.numel() for p in model.parameters())
    for s in steps:
        # At least the weights' 6 N per token, over the step's time at 1 GFLOP/s.
        assert s["mfu"] >= 6 * n * s["tokens"] / (s["seconds"] * 1e9) > 0
    (dtypes,) = [r for r in records if r["event"] == "dtypes"]
    assert dtypes["attention"] == ["per_sample_sdpa"] and dtypes["fused_adamw"] is True


def test_a_cpu_or_fp32_row_keeps_the_per_sample_loop() -> None:
    q = torch.zeros(1, 4, 8, 16)
    assert varlen_kernel(q) is None  # CPU: torch's varlen kernel has no CPU implementation
    assert varlen_kernel(q.to(torch.bfloat16)) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_varlen_kernel_equals_the_per_sample_loop_on_a_gpu() -> None:
    torch.manual_seed(0)
    bounds = [0, 37, 100, 101, 256]
    q = torch.randn(1, 8, 256, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, 2, 256, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, 2, 256, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    loop = torch.cat([F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True,
                                                     enable_gqa=True) for a, b in itertools.pairwise(bounds)], dim=2)
    fast = torch_varlen(q, k, v, bounds, None, True)  # [T, heads, dim]
    torch.testing.assert_close(fast, loop[0].transpose(0, 1), atol=2e-2, rtol=2e-2)
    grads_fast = torch.autograd.grad(fast.float().square().sum(), (q, k, v))
    grads_loop = torch.autograd.grad(loop[0].transpose(0, 1).float().square().sum(), (q, k, v))
    for a, b in zip(grads_fast, grads_loop):
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)
    assert varlen_kernel(q) is not None
