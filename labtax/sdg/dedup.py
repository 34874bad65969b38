"""Exact and near-duplicate removal within a leaf and against its seeds.

Texts are normalised (Unicode NFKC, lower case, punctuation dropped, whitespace collapsed). Two texts
are exact duplicates when their normalised forms are equal, and near-duplicates when the Jaccard
similarity of their word 3-shingles (sets of three consecutive words; texts under three words use
their words) is at least the threshold, 0.8 by default (`GenerationSettings.dedup_threshold`): a
rephrasing that changes one word in a ten-word question (~0.5) is kept, a copy with a changed
trailing punctuation or article (~0.9) is not. An inverted index from shingle to texts limits the
comparisons to texts sharing a shingle, so a leaf's few thousand rows dedupe in milliseconds.
"""

from __future__ import annotations

from collections import defaultdict

from labtax.mix.text import normalize


def shingles(text: str, n: int = 3) -> frozenset[str]:
    words = normalize(text).split()
    if len(words) < n:
        return frozenset(words)
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class Deduper:
    """Remembers kept texts; `check(text)` says "exact", "near" or None (new: then it is remembered)."""

    def __init__(self, threshold: float = 0.8, n: int = 3) -> None:
        self.threshold = threshold
        self.n = n
        self._exact: set[str] = set()
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = defaultdict(list)

    def add(self, text: str) -> None:
        """Remember a text without checking it (the seeds)."""
        self._exact.add(normalize(text))
        self._remember(shingles(text, self.n))

    def _remember(self, sh: frozenset[str]) -> None:
        idx = len(self._sets)
        self._sets.append(sh)
        for s in sh:
            self._index[s].append(idx)

    def check(self, text: str) -> str | None:
        norm = normalize(text)
        if norm in self._exact:
            return "exact"
        sh = shingles(text, self.n)
        candidates: set[int] = set()
        for s in sh:
            candidates.update(self._index.get(s, ()))
        for idx in sorted(candidates):
            if jaccard(sh, self._sets[idx]) >= self.threshold:
                return "near"
        self._exact.add(norm)
        self._remember(sh)
        return None
