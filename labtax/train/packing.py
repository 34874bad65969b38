"""Packing: which samples go into which optimizer step, rank and micro-batch, and the tensors for one.

Every epoch shuffles the samples with a seed derived from (seed, epoch) and cuts the order into
optimizer steps of `effective_batch` samples. A step's samples are spread over the ranks (longest
first, each to the rank with the fewest tokens so far) and packed on each rank into micro-batches of
at most `max_tokens_per_batch` tokens by first-fit decreasing. The plan depends only on the sample
lengths and the seed, so every rank computes the same plan without talking to the others, and the
loss normaliser (all loss tokens of the step, on all ranks) is known before the first forward pass.

Packed layout: one row holding whole samples back to back, `position_ids` restarting at 0 for each
sample. transformers (>= 5) turns restarting position_ids into a block-diagonal causal mask when no
attention_mask is passed (sdpa/eager) or into varlen kernels (flash-attention), so no token attends
across samples. Models outside that list get bins of similar lengths padded to the longest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from labtax.train.data import IGNORE

# Model types whose transformers implementation routes attention masks through masking_utils,
# which detects packed sequences from position_ids. Others are trained with padded bins.
PACKED_MODEL_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "granite", "granitemoe",
    "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "olmo2", "smollm3", "starcoder2", "cohere",
})


@dataclass
class StepPlan:
    """One optimizer step: micro-batches (lists of sample indices) per rank; [] is a no-op batch."""

    samples: int
    tokens: int
    loss_tokens: int
    micro_batches: list[list[list[int]]] = field(default_factory=list)  # [rank][micro][sample]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch; a pure function of (n, seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, effective_batch: int) -> int:
    return -(-n // effective_batch)


def first_fit_decreasing(indices: list[int], lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Bins of whole samples, each holding at most `capacity` tokens, longest samples placed first."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(indices, key=lambda j: (-int(lengths[j]), j)):
        size = int(lengths[i])
        for b, free in enumerate(room):
            if size <= free:
                bins[b].append(i)
                room[b] -= size
                break
        else:
            bins.append([i])
            room.append(capacity - size)
    return bins


def padded_bins(indices: list[int], lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Bins of similar lengths whose padded size (rows x longest) stays within `capacity`."""
    bins: list[list[int]] = []
    for i in sorted(indices, key=lambda j: (-int(lengths[j]), j)):
        if bins and (len(bins[-1]) + 1) * int(lengths[bins[-1][0]]) <= capacity:
            bins[-1].append(i)
        else:
            bins.append([i])
    return bins


def plan_step(indices: np.ndarray, lengths: np.ndarray, loss_counts: np.ndarray, capacity: int,
              world_size: int = 1, packed: bool = True) -> StepPlan:
    """Spread one step's samples over the ranks, then bin each rank's share into micro-batches."""
    shares: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for i in sorted((int(j) for j in indices), key=lambda j: (-int(lengths[j]), j)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shares[rank].append(i)
        load[rank] += int(lengths[i])
    binner = first_fit_decreasing if packed else padded_bins
    per_rank = [binner(share, lengths, capacity) for share in shares]
    # Every rank runs the same number of forward/backward passes: FSDP's collectives must pair up.
    most = max(len(b) for b in per_rank)
    for b in per_rank:
        b.extend([] for _ in range(most - len(b)))
    idx = [int(j) for j in indices]
    return StepPlan(samples=len(idx), tokens=int(lengths[idx].sum()), loss_tokens=int(loss_counts[idx].sum()),
                    micro_batches=per_rank)


def collate(samples: list[tuple[np.ndarray, np.ndarray]], packed: bool, pad_id: int) -> dict[str, torch.Tensor]:
    """Tensors for one micro-batch: input_ids, position_ids, targets (+ attention_mask if padded)."""
    if not samples:  # a no-op batch for a rank with nothing left this step: one token, no loss
        return {"input_ids": torch.tensor([[pad_id]]), "position_ids": torch.zeros(1, 1, dtype=torch.long),
                "targets": torch.full((1, 1), IGNORE, dtype=torch.long)}
    if packed:
        ids = np.concatenate([s[0] for s in samples])
        tgt = np.concatenate([s[1] for s in samples])
        pos = np.concatenate([np.arange(len(s[0])) for s in samples])
        return {"input_ids": torch.from_numpy(ids.astype(np.int64))[None],
                "position_ids": torch.from_numpy(pos.astype(np.int64))[None],
                "targets": torch.from_numpy(tgt.astype(np.int64))[None]}
    width = max(len(s[0]) for s in samples)
    ids_t = torch.full((len(samples), width), pad_id, dtype=torch.long)
    tgt_t = torch.full((len(samples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (ids, tgt) in enumerate(samples):
        ids_t[row, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
        tgt_t[row, : len(tgt)] = torch.from_numpy(tgt.astype(np.int64))
        mask[row, : len(ids)] = 1
    positions = torch.arange(width).expand(len(samples), -1).contiguous()
    return {"input_ids": ids_t, "position_ids": positions, "targets": tgt_t, "attention_mask": mask}
