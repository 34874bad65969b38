"""The in-process teacher's generation loop: no padded prompt tokens, no steps for finished rows.

`model.generate` on a left-padded batch computes every row at the longest prompt's length (a padded
position costs the MLP like a real one) and keeps decoding every row until the last one ends. On a
CPU, where each computed token costs its full share of the matrix work, both are waste: a knowledge
prompt of 480 tokens padded the 200-token question prompts of its batch to 480, and a row that ended
at 40 tokens still ran 160 steps. Here instead:

- each prompt's prefill runs alone at its own length (prompts that share a long prefix, as
  `prefix.plan_batches` finds them, compute it once), and the per-row caches are stacked into one
  left-padded batch cache with an attention mask and each row's own positions;
- the batch then decodes one token per active row per step, and a row leaves the batch (its cache
  rows dropped) as soon as it ends: its end-of-sequence token, one of its stop strings, or its token
  budget.

Sampling stays per request (`PerRequestSampler.pick`: each row draws from its own generator, once per
step it is active, as inside `generate`), greedy rows take the argmax, so a request's text is a
function of its prompt and seed. Greedy output equals `model.generate`'s (tests/teachers/
test_decode.py); sampled output too, up to float rounding at a draw's boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labtax.teachers import prefix


@dataclass
class Row:
    """One request to generate: its prompt token ids and what ends it."""

    ids: list[int]
    max_new: int
    stops: tuple[str, ...] = ()


@dataclass
class Generated:
    tokens: list[int]
    finish: str  # "stop" (end-of-sequence or a stop string) or "length"


def _prefill(model: Any, rows: Sequence[Row], batch_size: int, device: Any) -> tuple[list[Any], list[Any]]:
    """Each row's KV cache (batch 1) and next-token logits; a prefix shared by neighbours once."""
    import torch

    caches: list[Any] = [None] * len(rows)
    logits: list[Any] = [None] * len(rows)
    ids = [r.ids for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (ids[i], i))
    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    for members, shared in prefix.plan_batches(ids, order, batch_size):
        base = None
        if shared:
            base = decoder(input_ids=torch.tensor([ids[members[0]][:shared]], device=device), use_cache=True).cache
        for k, i in enumerate(members):
            cache = base
            if base is not None and k + 1 < len(members):
                cache = _copy(base)  # the last member may extend the shared cache itself
            out = decoder(input_ids=torch.tensor([ids[i][shared:]], device=device), cache=cache, use_cache=True)
            caches[i] = out.cache
            logits[i] = head(out.last_hidden_state[:, -1, :])[0]
    return caches, logits


def _copy(cache: Any) -> Any:
    import copy

    return copy.deepcopy(cache)


def _stack(caches: Sequence[Any], lengths: Sequence[int]) -> Any:
    """One batch cache from batch-1 caches of different lengths: each row left-padded with zeros
    (masked out by the attention mask)."""
    import torch

    width = max(lengths)
    batch = caches[0]
    for layer, first in enumerate(batch.layers):
        for name in ("keys", "values"):
            parts = []
            for cache, n in zip(caches, lengths):
                t = getattr(cache.layers[layer], name)
                if n < width:
                    pad = torch.zeros((*t.shape[:2], width - n, t.shape[3]), dtype=t.dtype, device=t.device)
                    t = torch.cat([pad, t], dim=2)
                parts.append(t)
            setattr(first, name, torch.cat(parts, dim=0))
    return batch


def generate(model: Any, rows: Sequence[Row], *, eos: set[int], pick: Callable[[Any, list[int]], Any],
             text_of: Callable[[list[int]], str], batch_size: int, device: Any = "cpu") -> list[Generated]:
    """Generate every row (see the module docstring). `pick(logits [n, vocab], rows)` chooses the next
    token of each active row (row indexes into `rows`); `text_of(tokens)` decodes, for stop strings."""
    import torch

    lengths = [len(r.ids) for r in rows]
    caches, first_logits = _prefill(model, rows, batch_size, device)
    cache = _stack(caches, lengths)
    width = max(lengths)
    mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths], device=device)
    positions = torch.tensor(lengths, device=device)  # the next token's position, per row
    out = [Generated([], "length") for _ in rows]
    active = list(range(len(rows)))
    logits = torch.stack(first_logits)
    while active:
        chosen = pick(logits, active).tolist()
        keep: list[int] = []
        for k, (i, token) in enumerate(zip(active, chosen)):
            row = out[i]
            if token in eos:
                row.finish = "stop"
                continue
            row.tokens.append(int(token))
            if rows[i].stops and any(s in text_of(row.tokens) for s in rows[i].stops):
                row.finish = "stop"
            elif len(row.tokens) < rows[i].max_new:
                keep.append(k)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, positions = mask[index], positions[index]
            chosen = [chosen[k] for k in keep]
            active = [active[k] for k in keep]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
        # The cache grows in place (DynamicCache.update).
        result = model(input_ids=torch.tensor(chosen, device=device)[:, None], attention_mask=mask, position_ids=positions[:, None],
                       cache=cache, use_cache=True, logits_to_keep=1)
        positions = positions + 1
        logits = result.logits[:, -1, :]
    return out
