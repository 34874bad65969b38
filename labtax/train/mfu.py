"""Model FLOPs utilisation of a training step on a GPU: the FLOPs the step needed, over what the
devices could have done in its time at their dense bf16 peak.

FLOPs per step: 6 x parameters x tokens (forward 2, backward 4, every weight once per token: the
tied head is counted once, as the head's matmul; the embedding lookup costs nothing) plus the
attention scores, which the parameter count misses: per layer and sample of length l, QK^T and AV
are 4 l^2 d multiply-adds forward over the full square, half of it causal, x3 with the backward:
6 L d sum(l^2). Activation checkpointing's recompute is not counted (MFU, not hardware FLOPs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

# Dense bf16 tensor-core peak per device, FLOP/s (vendor datasheets; "with sparsity" figures halved).
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100", 989e12),  # SXM
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10", 125e12),
    ("L4", 121e12),
)


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak (LABTAX_PEAK_TFLOPS overrides, in TFLOP/s); None when unknown."""
    override = os.environ.get("LABTAX_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_for_name(torch.cuda.get_device_name(device))


def peak_for_name(name: str) -> float | None:
    for key, peak in PEAK_BF16:  # the more specific names first
        if key.lower() in name.lower():
            return peak
    return None


def step_flops(parameters: int, layers: int, hidden: int, sample_lengths: Iterable[int]) -> float:
    lengths = [int(n) for n in sample_lengths]
    return 6.0 * parameters * sum(lengths) + 6.0 * layers * hidden * sum(n * n for n in lengths)


def mfu(flops: float, seconds: float, peak: float, devices: int) -> float:
    return flops / (seconds * peak * devices)
