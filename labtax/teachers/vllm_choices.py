"""Verdict probabilities from vLLM's logprobs (no vllm import: the mapping is tested without it).

A request with `choices` is sent to the engine with `SamplingParams(logprobs=TOP_LOGPROBS,
max_tokens=1)`: one decoding step whose output carries, for that position, the top tokens by id with
their log-probabilities (`vllm.sequence.Logprob` objects with a `.logprob`; plain floats work too).
The choices' probabilities are the mass on the first tokens of their spellings (the ids
`choices.token_ids` gives, as the transformers teacher uses), normalised over the choices. When no
choice's token is among the top ones the verdict is generated as text instead (the fallback).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from labtax.teachers.choices import normalise

TOP_LOGPROBS = 20  # vLLM's default max_logprobs: asking for more is refused by the engine


def _logprob(entry: Any) -> float | None:
    value = getattr(entry, "logprob", entry)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def choice_probs(position: Mapping[int, Any] | None, ids: Mapping[str, Sequence[int]],
                 choices: Sequence[str]) -> tuple[dict[str, float], float] | None:
    """(P(choice) normalised over the choices, the raw mass they had) from one position's
    {token id: Logprob}; None when no choice's token is in it."""
    if not position:
        return None
    mass = {c: 0.0 for c in choices}
    for c in choices:
        for token in ids.get(c, ()):
            lp = _logprob(position.get(token))
            if lp is not None:
                mass[c] += math.exp(lp)
    probs = normalise(mass)
    if probs is None:
        return None
    return probs, round(sum(mass.values()), 6)
