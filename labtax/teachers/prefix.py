"""Verdict forward passes that compute a shared prompt prefix once (the in-process teacher's `_score`).

A leaf's judge prompts repeat most of their text: the stage's system turn, the task, the leaf's
context or document chunk; only the question and answer at the end differ. Its calibration copies
share even more (a seed and its broken copy differ in one line). On a CPU, where a verdict's cost is
its prompt's forward pass, computing that shared part once per batch removes most of the work.

How: the prompts of a verdict group are sorted by their token ids, so prompts sharing a long prefix
sit together; `plan_batches` cuts the sorted list into batches whose shared prefix pays (a prompt joins
the batch before it only if that adds fewer tokens than 80% of its own length). For each batch the shared
prefix runs once (batch 1, cache kept), the cache is repeated for every row, and only the suffixes
run, right-padded: a padded position comes after every real one, so under the causal mask no real
token sees padding and no attention mask is needed. Each row's distribution is read at its own last
real token. The result equals one full forward pass per prompt up to float rounding
(tests/teachers/test_prefix_verdicts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_SHARED = 16  # tokens: below this a shared prefix is not worth a second forward call


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _cost(shared: int, longest: int, rows: int) -> int:
    """Tokens computed for a batch: the prefix once, every row's suffix padded to the longest."""
    return shared + rows * (longest - shared)


def plan_batches(ids: Sequence[Sequence[int]], order: Sequence[int], batch_size: int) -> list[tuple[list[int], int]]:
    """Batches of `order` (indexes into `ids`, already sorted so that shared prefixes are adjacent) as
    (members, shared prefix length). A prompt joins the open batch while it is not full and joining
    adds fewer tokens than 80% of the prompt's own length (it then
    shares a fifth of it at least, the padding counted); every row keeps at least its last token as suffix
    (its distribution is read there)."""
    batches: list[tuple[list[int], int]] = []
    members: list[int] = []
    shared = longest = 0
    for i in order:
        n = len(ids[i])
        if members and len(members) < batch_size:
            s = min(shared, common_prefix(ids[members[-1]], ids[i]), n - 1)
            grown = max(longest, n)
            if _cost(s, grown, len(members) + 1) - _cost(shared, longest, len(members)) < 0.8 * n:
                members.append(i)
                shared, longest = s, grown
                continue
        if members:
            batches.append((members, shared))
        members, shared, longest = [i], n - 1, n
    if members:
        batches.append((members, shared))
    return [(m, s if len(m) > 1 and s >= MIN_SHARED else 0) for m, s in batches]


def last_token_logits(model: Any, rows: Sequence[Sequence[int]], shared: int, pad_id: int, device: Any) -> Any:
    """The next-token logits after each row ([rows, vocab]), computing rows[*][:shared] once."""
    import torch

    lengths = [len(r) for r in rows]
    if shared <= 0:
        # Left padding and an attention mask: every row's last token sits at the last position.
        width = max(lengths)
        ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
    prefix = torch.tensor([list(rows[0][:shared])], device=device)
    cache = model.get_decoder()(input_ids=prefix, use_cache=True).cache
    cache.batch_repeat_interleave(len(rows))
    width = max(lengths) - shared
    suffix = torch.tensor([list(r[shared:]) + [pad_id] * (width - (len(r) - shared)) for r in rows], device=device)
    hidden = model.get_decoder()(input_ids=suffix, cache=cache, use_cache=True).last_hidden_state
    last = torch.tensor([n - shared - 1 for n in lengths], device=device)
    picked = hidden[torch.arange(len(rows), device=device), last]
    return model.get_output_embeddings()(picked)
