"""Prefix-shared scoring rows: every token that several scored sequences share is run once.

The four options of a multiple-choice item share their whole prompt, and every row shares the chat
template's system header. Scoring each (prompt + completion) as its own row runs the transformer on
those shared tokens again and again: on the benchmark's data that is more than half of all tokens.

Here the sequences are laid into a token trie, cut into packed rows of about `row_tokens` nodes, and
each packed row is run once with a 4D attention mask in which a node attends exactly to its ancestors
and itself, at the position id of its depth. A node's hidden state then depends on the same tokens at
the same positions as in the plain per-sequence forward pass, so the scores agree with it to float
rounding (tests/eval/test_prefix_sharing.py compares them).

Sorting the sequences lexicographically puts the ones that share a prefix next to each other, and the
longest prefix a sequence shares with any earlier one in its row is then the one it shares with the
sequence just before it: the trie is built in one pass, parents always before their children.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from labtax.eval.encoding import Encoded

DEFAULT_ROW_TOKENS = 384  # trie nodes per packed row: the dense mask makes attention grow with its square
# Architectures whose decoder takes a custom 4D mask and explicit position ids unchanged (the
# transformers masking utilities return a 4D mask as given). Others are scored row by row.
PACKABLE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
MASKING_ATTENTION = frozenset({"sdpa", "eager"})  # flash-attention kernels ignore a 4D mask


@dataclass(frozen=True)
class PackedRow:
    tokens: list[int]  # one per trie node, parents before children
    parents: list[int]  # index of each node's parent in this row, -1 for a root
    depths: list[int]  # position id of each node: its depth in the trie
    scored: list[tuple[int, int, int]]  # (item index, node whose output predicts, target token id)


def packable(model: Any) -> bool:
    """Whether the model's forward pass honours a custom 4D mask with position ids."""
    config = model.config
    return (getattr(config, "model_type", None) in PACKABLE_TYPES
            and getattr(config, "_attn_implementation", "eager") in MASKING_ATTENTION)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def pack_rows(items: Sequence[Encoded], row_tokens: int = DEFAULT_ROW_TOKENS) -> list[PackedRow]:
    """The items' sequences as tries of at most about `row_tokens` nodes (an item longer than that gets
    a row of its own), with the positions that score each item's completion tokens."""
    seqs = [item.prompt_ids + item.target_ids for item in items]
    order = sorted(range(len(items)), key=lambda i: seqs[i])
    rows: list[PackedRow] = []
    row: PackedRow | None = None
    prev: list[int] = []  # the previous sequence of this row
    prev_nodes: list[int] = []  # its node at each position
    for i in order:
        seq = seqs[i]
        shared = _common_prefix(prev, seq) if row is not None else 0
        added = len(seq) - shared  # a repeated sequence adds nothing and joins any row
        if row is None or (added and len(row.tokens) + added > row_tokens):
            row = PackedRow([], [], [], [])
            rows.append(row)
            shared = 0
        nodes = prev_nodes[:shared]
        for pos in range(shared, len(seq)):
            row.parents.append(nodes[pos - 1] if pos else -1)
            row.tokens.append(seq[pos])
            row.depths.append(pos)
            nodes.append(len(row.tokens) - 1)
        start = len(items[i].prompt_ids)
        row.scored.extend((i, nodes[pos - 1], seq[pos]) for pos in range(start, len(seq)))
        prev, prev_nodes = seq, nodes
    return rows


def ancestor_mask(parents: Sequence[int], width: int) -> torch.Tensor:
    """(width x width) bool: node q may attend to node k when k is q itself or one of its ancestors.
    Positions past the row's nodes (padding) attend only to themselves, so no softmax row is empty."""
    import numpy as np
    import torch

    # Row by row in numpy (a node's row is its parent's plus itself): per-row torch indexing costs
    # microseconds each, which a 100-leaf run's 100,000 nodes turn into seconds.
    mask = np.zeros((width, width), dtype=np.bool_)
    for node, parent in enumerate(parents):
        if parent >= 0:
            mask[node] = mask[parent]  # the parent's own bit is set: it came earlier
        mask[node, node] = True
    padding = np.arange(len(parents), width)
    mask[padding, padding] = True
    return torch.from_numpy(mask)


def batch_tensors(rows: Sequence[PackedRow], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, 4D additive attention mask, position ids) of packed rows, right-padded to the
    longest. The mask is additive (0 or the dtype's minimum), which eager and SDPA attention both take."""
    import torch

    width = max(len(r.tokens) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.full((len(rows), 1, width, width), torch.finfo(dtype).min, dtype=dtype)
    for b, row in enumerate(rows):
        ids[b, : len(row.tokens)] = torch.tensor(row.tokens, dtype=torch.long)
        positions[b, : len(row.depths)] = torch.tensor(row.depths, dtype=torch.long)
        mask[b, 0].masked_fill_(ancestor_mask(row.parents, width), 0.0)
    return ids, mask, positions
