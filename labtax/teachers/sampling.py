"""Per-request sampling for batched in-process generation.

`model.generate(do_sample=True)` draws every row of a batch from one global generator, so a
request's text depends on which other requests share its batch (another leaf generated at the same
time changes this leaf's samples). `PerRequestSampler` makes the draw per row instead: a logits
processor that applies temperature and top-p to each row, draws the next token from that row's own
`torch.Generator` (seeded with the request's seed), and leaves only that token possible, so greedy
decoding then emits it. A request's text is then a function of its own prompt and seed (up to the
last-bit float differences batching can make in the logits, which move a draw only when it falls on
a boundary between two tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class PerRequestSampler:
    """A `transformers` logits processor (called as processor(input_ids, scores) -> scores)."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: Any) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def pick(self, scores: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """The next token of each row of `scores` ([n, vocab]), row k drawing from the generator of
        request rows[k] (labtax's own decoding loop, decode.py, drops finished rows)."""
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (always the first token).
            remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= self.top_p
            sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        probs = torch.softmax(logits, dim=-1)
        return torch.cat([torch.multinomial(p, 1, generator=self.generators[r]) for p, r in zip(probs, rows)])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        picked = self.pick(scores, range(scores.shape[0]))[:, None]
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, picked, 0.0)  # type: ignore[return-value]
