"""Attention over a packed row, one sample at a time: causal, never across samples, no dense mask.

transformers turns restarting position_ids into a block-diagonal [T x T] mask for sdpa. With a mask
the kernel cannot skip anything: every query attends over the whole row and the blocks of other
samples are computed and thrown away, and the causal half is not skipped either. Cutting the row at
the sample boundaries and calling sdpa with `is_causal=True` on each sample costs sum(l_i^2 / 2)
instead of T^2 (a row of a 700-token and three short samples: a quarter) and takes the kernels'
causal fast path (flash on CPU and CUDA), with the same result up to float rounding.

The trainer registers `labtax_packed` with transformers' attention interface and passes the row's
sample boundaries as `cu_seq_lens_q`, the keyword the varlen flash kernels already read (without
it they are read from the restarting position_ids). Its mask function builds no mask for a packed
row (the boundaries say everything) and sdpa's mask for a padded batch, which then runs plain sdpa.

On a GPU in half precision the row goes to one varlen kernel call instead of the loop (one kernel
launch per layer instead of one per sample, and no Python loop): flash-attention's
`flash_attn_varlen_func` where the flash-attn package is installed, else torch's own
`torch.nn.attention.varlen.varlen_attn`. Neither runs on a CPU (torch's raises NotImplementedError
there; SDPA on nested jagged tensors rejects `is_causal`), so a CPU keeps the loop; the GPU test
checks the kernel against the loop, outputs and gradients.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from typing import Any

import torch
import torch.nn.functional as F

NAME = "labtax_packed"


def packed_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """sdpa per sample of a packed row [1, heads, T, dim]; returns [1, T, heads, dim] as sdpa's does."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None and kwargs.get("position_ids") is not None:
        bounds = sample_bounds(kwargs["position_ids"])
    if bounds is None or attention_mask is not None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = query.shape[1] != key.shape[1]
    kernel = varlen_kernel(query, dropout)
    if kernel is not None:
        KERNELS_USED.add(kernel.__name__)
        return kernel(query, key, value, [int(b) for b in bounds], scaling, gqa)[None], None
    KERNELS_USED.add("per_sample_sdpa")
    parts = [F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout,
                                            scale=scaling, is_causal=True, enable_gqa=gqa)
             for a, b in itertools.pairwise(bounds)]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return out.transpose(1, 2).contiguous(), None


KERNELS_USED: set[str] = set()  # which attention paths ran in this process (the metrics' dtypes line)


def _varlen_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   bounds: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """[1, heads, T, dim] -> [T, heads, dim] (the varlen kernels' layout), the int32 boundaries and the
    longest sample."""
    q, k, v = (x[0].transpose(0, 1).contiguous() for x in (query, key, value))
    cu = torch.tensor(bounds, dtype=torch.int32, device=query.device)
    return q, k, v, cu, max(b - a for a, b in itertools.pairwise(bounds))


def flash_attn_varlen(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bounds: list[int],
                      scaling: float | None, gqa: bool) -> torch.Tensor:
    """flash-attention's varlen kernel (the flash-attn package): one call for the whole row; GQA native."""
    from flash_attn import flash_attn_varlen_func

    q, k, v, cu, longest = _varlen_inputs(query, key, value, bounds)
    return flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, 0.0, softmax_scale=scaling, causal=True)


def torch_varlen(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bounds: list[int],
                 scaling: float | None, gqa: bool) -> torch.Tensor:
    """torch's own varlen attention (torch.nn.attention.varlen, flash on CUDA): causal is the window
    (-1, 0). It has no CPU kernel (NotImplementedError there, checked in torch 2.13), nor does SDPA on
    nested jagged tensors take is_causal, so a CPU keeps the per-sample loop."""
    from torch.nn.attention.varlen import varlen_attn

    q, k, v, cu, longest = _varlen_inputs(query, key, value, bounds)
    out = varlen_attn(q, k, v, cu, cu, longest, longest, scale=scaling, window_size=(-1, 0), enable_gqa=gqa)
    return out[0] if isinstance(out, tuple) else out  # (output, lse) only when asked for the lse


def varlen_kernel(query: torch.Tensor, dropout: float = 0.0) -> Any:
    """The one-call varlen kernel for this query, or None for the per-sample loop: flash-attn's where
    the package is installed, else torch's; only on CUDA, in half precision (bf16 autocast or FSDP2's
    bf16 parameters), without dropout. LABTAX_ATTENTION=loop forces the loop (to compare)."""
    if (not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16) or dropout
            or os.environ.get("LABTAX_ATTENTION") == "loop" or query.shape[-1] > 256):
        return None
    if importlib.util.find_spec("flash_attn") is not None:
        return flash_attn_varlen
    try:
        from torch.nn.attention import varlen  # noqa: F401
    except ImportError:
        return None
    return torch_varlen


def sample_bounds(position_ids: torch.Tensor) -> list[int] | None:
    """Where each sample of a packed row starts (position 0), plus the row's end; None for padded batches."""
    if position_ids.shape[0] != 1:
        return None
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        return None
    return [*starts, int(position_ids.shape[1])]


def _mask(*, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
    """No mask for a packed row (packed_attention cuts it at the boundaries); sdpa's for a padded batch."""
    from transformers.masking_utils import sdpa_mask

    return None if attention_mask is None else sdpa_mask(attention_mask=attention_mask, **kwargs)


def use_packed_attention(lm: Any) -> bool:
    """Switch an sdpa/eager model to `labtax_packed` (registered once); False where it does not apply."""
    config = getattr(lm, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False  # flash-attention already runs varlen; flex and others keep their own path
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, _mask)
    try:
        lm.set_attn_implementation(NAME)
    except (ValueError, AttributeError, KeyError):
        return False
    return True
