"""Reading a verdict's probabilities: which tokens spell each choice, and how much of the next-token
distribution falls on them. Shared by the in-process teacher (a full distribution) and the openai
teacher (the server's `top_logprobs`, a truncated one).

A choice word ("yes", "keep", "2") is matched by the first token of its usual spellings: as is,
capitalised, upper case, each with and without a leading space. A token that starts two choices (a
single letter both "no" and "not" begin with, say) would blur them, so it counts for neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def spellings(word: str) -> list[str]:
    forms = {word, word.lower(), word.capitalize(), word.upper()}
    return sorted(forms | {f" {f}" for f in forms})


def token_ids(tokenizer: Any, choices: Sequence[str]) -> dict[str, list[int]]:
    """Per choice, the ids of the first token of each spelling (ids shared by two choices dropped)."""
    found: dict[str, set[int]] = {}
    for choice in choices:
        ids = set()
        for form in spellings(choice):
            encoded = tokenizer.encode(form, add_special_tokens=False)
            if encoded:
                ids.add(int(encoded[0]))
        found[choice] = ids
    shared = {i for c in choices for i in found[c] if sum(i in found[o] for o in choices) > 1}
    return {c: sorted(found[c] - shared) for c in choices}


def normalise(mass: Mapping[str, float]) -> dict[str, float] | None:
    total = sum(mass.values())
    if total <= 0 or not math.isfinite(total):
        return None
    return {c: round(m / total, 6) for c, m in mass.items()}


def match(token: str, choices: Sequence[str]) -> str | None:
    """The choice a server-reported token spells (exactly, ignoring case and surrounding space)."""
    t = token.strip().lower()
    for c in choices:
        if t and t == c.lower():
            return c
    return None


def from_top_logprobs(positions: Iterable[Mapping[str, float]], choices: Sequence[str],
                      look: int = 3) -> tuple[dict[str, float], float] | None:
    """Choice probabilities from a server's per-position {token: logprob} maps: the first of the first
    `look` positions where any choice appears (a model may open with a space or a quote). Returns the
    normalised probabilities and the raw mass they had, or None when no choice appeared."""
    for k, top in enumerate(positions):
        if k >= look:
            break
        mass = {c: 0.0 for c in choices}
        for token, logprob in top.items():
            c = match(token, choices)
            if c is not None and logprob is not None and math.isfinite(float(logprob)):
                mass[c] += math.exp(float(logprob))
        probs = normalise(mass)
        if probs is not None:
            return probs, round(sum(mass.values()), 6)
    return None


def expected_score(probs: Mapping[str, float]) -> float:
    """The expectation of a numeric choice set ("1", "2", "3") under its probabilities."""
    return round(sum(float(c) * p for c, p in probs.items()), 6)
