"""Near-duplicate removal across the whole taxonomy, at mixing time.

Generation dedupes within a leaf (sdg/dedup.py, word 3-shingles); a leaf's data never depends on
other leaves (incremental runs rely on that), so duplicates BETWEEN leaves, and paraphrases of any
leaf's seed examples, are removed when the sets are mixed.

The measure is the Jaccard similarity of content-word sets: a text is normalised as in
sdg/dedup.py, stop words and one-letter words (not digits) dropped, and the remaining words form a set.
Two texts whose sets have Jaccard >= `MixSettings.dedup_threshold` (0.7 by default) are
near-duplicates: "Write a four line poem about the river at dawn." and "Compose a four-line poem
about the river at dawn" (5 of 7 words shared, 0.71) are; "... at dawn" and "... at dusk" (0.6) are
not. What is compared: a skill sample's user turn (a grounded sample's context is part of it, so the
same question about two contexts is two samples), a knowledge sample's question and answer (its
chunk would dominate every pair of the same chunk), a test row's question the same way.

Speed: each sample's signature is computed once, when its leaf is stored (`signature`): a 24-value
MinHash of its word set. At mixing time (all in numpy) the values make 8 band keys of 3 values;
texts sharing a band key with an earlier text OF ANOTHER GROUP (another leaf's samples, any leaf's
seeds, its own leaf's seeds included; within a leaf the pipeline's dedup has run) are candidates,
and a candidate pair whose share of equal MinHash values (an estimate of the Jaccard similarity,
standard error about 0.09 at 0.7) reaches the threshold minus 0.1 is checked exactly on its word
sets (a pair at 0.71 passes that gate with probability about 0.85); a candidate pair with a seed
is always checked exactly. A pair at
Jaccard 0.7 becomes a candidate with probability 0.96, at 0.8 with 0.997. Of a band key's texts
only the first 4 are compared with the later ones, which bounds the work on templated data. The
first occurrence in leaf-path order is kept; the seeds of every leaf come before any training
sample, so a generated paraphrase of a seed is always the one dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labtax.data.sample import question_of, user_text
from labtax.mix.text import normalize

BANDS, ROWS = 8, 3
VALUES = BANDS * ROWS
BUCKET = 4
# Candidates whose estimate is at least threshold - GATE get the exact check (recall at the threshold).
GATE = 0.1
_MERSENNE = (1 << 61) - 1
# Fixed coefficients (derived from their index, so every process and version agrees).
_COEFFS = [
    (int.from_bytes(hashlib.sha256(f"labtax-minhash-a-{i}".encode()).digest()[:8], "big") % _MERSENNE | 1,
     int.from_bytes(hashlib.sha256(f"labtax-minhash-b-{i}".encode()).digest()[:8], "big") % _MERSENNE)
    for i in range(BANDS * ROWS)
]
STOP_WORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "there", "here", "what", "which", "who", "whom", "whose", "how", "why", "when", "where", "do", "does", "did", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "i", "you", "he", "she", "we", "they", "me", "him", "her", "us", "them", "my", "your", "our", "their", "about", "into", "over", "under", "than", "then", "so", "not", "no", "yes", "please"]
)


def content_words(text: str) -> frozenset[str]:
    # Numbers stay whatever their length: "fact 3" and "fact 4" differ.
    return frozenset(w for w in normalize(text).split() if (len(w) > 1 or w.isdigit()) and w not in STOP_WORDS)


def signature(text: str) -> str:
    """The text's 24-value MinHash (32 bits each) as 192 hex digits; zeros for a text of no content
    word. A leaf's signatures are stored concatenated, in its samples' order."""
    words = content_words(text)
    if not words:
        return "0" * 8 * VALUES
    hashes = [int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big") for w in words]
    return "".join(f"{min((a * h + b) % _MERSENNE for h in hashes) & 0xFFFFFFFF:08x}" for a, b in _COEFFS)


def dedup_text(kind: str, sample: dict[str, Any]) -> str:
    """What is compared: a knowledge row's question and answer, else the user turn."""
    if kind != "knowledge":
        return user_text(sample)  # type: ignore[arg-type]
    msgs = sample.get("messages") or []
    answer = str(msgs[-1].get("content", "")) if msgs and msgs[-1].get("role") == "assistant" else ""
    return f"{question_of(sample)}\n{answer}"  # type: ignore[arg-type]


def stored_signatures(sig: str, n: int) -> str:
    """A mix leaf's stored signatures of n texts (its index's `mh` for its samples, `tmh` for its test
    rows); zeros (nothing to compare) for data stored before there were any."""
    return sig if len(sig) == n * 8 * VALUES else "0" * (n * 8 * VALUES)


def text_at(ordered: Sequence[Any], g: int, i: int) -> str:
    """The dedup text of group g's i-th row, groups as mix.build_sets makes them: each leaf's test
    rows, then each leaf's samples."""
    leaf = ordered[g % len(ordered)]
    if g < len(ordered):
        a, b = leaf.test_span
        line = leaf.data[a:b].split(b"\n")[i]
    else:
        line = leaf.lines()[i]
    return dedup_text(leaf.kind, json.loads(line))


def _band_keys(values: np.ndarray) -> np.ndarray:
    """(N, BANDS) keys, each mixing one band's ROWS values and the band's number."""
    v = values.astype(np.uint64)
    keys = np.zeros((len(v), BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(BANDS):
            key = np.full(len(v), b + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            for r in range(ROWS):
                key = (key ^ v[:, b * ROWS + r]) * np.uint64(0xBF58476D1CE4E5B9)
            keys[:, b] = key
    return keys


def find_duplicates(groups: Sequence[tuple[str, bool]], threshold: float,
                    text_of: Callable[[int, int], str]) -> list[set[int]]:
    """The near-duplicates to leave out. `groups`, in order: (signatures, droppable) per group of
    texts (a leaf's test rows, a leaf's samples), the signatures concatenated in one hex string
    (`join_signatures`); returns, per group, the indices of its texts that repeat a text of an
    earlier group that was itself kept (within a group, the pipelines' own dedup has run). Texts of
    groups that are not droppable (the seeds) are only remembered.

    All in numpy: candidate pairs from shared band keys, then the share of equal MinHash values (the
    Jaccard estimate); Python only checks the pairs so found exactly, on the word sets of
    `text_of(group, index)` (the estimate's tail would let through pairs at 0.45 among millions)."""
    out: list[set[int]] = [set() for _ in groups]
    if threshold >= 1.0 or not groups:  # 1.0: the taxonomy-wide dedup is off
        return out
    width = 8 * VALUES
    sizes = np.array([len(sig) // width for sig, _ in groups])
    values = np.frombuffer(bytes.fromhex("".join(sig for sig, _ in groups)), dtype=">u4").astype(np.uint32)
    values = values.reshape(-1, VALUES)
    group_all = np.repeat(np.arange(len(groups)), sizes)
    index_all = np.arange(len(values)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    valid = np.flatnonzero(values.any(axis=1))  # all zeros: a text without content words
    if len(valid) < 2:
        return out
    values, group, local = values[valid], group_all[valid], index_all[valid]
    droppable = np.array([bool(d) for _, d in groups])
    cand = _candidate_pairs(values, group, droppable, threshold)
    if not len(cand):
        return out
    partners: dict[int, list[int]] = defaultdict(list)
    for i, j in cand.tolist():
        partners[i].append(j)
    words: dict[int, frozenset[str]] = {}

    def wset(x: int) -> frozenset[str]:
        if x not in words:
            words[x] = content_words(text_of(int(group[x]), int(local[x])))
        return words[x]

    dropped: set[int] = set()
    for row in sorted(partners):
        if not droppable[group[row]]:
            continue
        for other in sorted(partners[row]):
            if other not in dropped and len(wset(row) & wset(other)) >= threshold * len(wset(row) | wset(other)):
                dropped.add(row)
                out[int(group[row])].add(int(local[row]))
                break
    return out


def _candidate_pairs(values: np.ndarray, group: np.ndarray, droppable: np.ndarray, threshold: float) -> np.ndarray:
    """(text, earlier-in-its-band text) pairs of different groups that share a band key and whose
    MinHash estimate passes the gate (or whose partner is a seed): what the exact check looks at."""
    keys = _band_keys(values).ravel()
    sid = np.repeat(np.arange(len(values)), BANDS)
    order = np.lexsort((sid, keys))
    k, s = keys[order], sid[order]
    start = np.concatenate(([True], k[1:] != k[:-1]))
    run_start = np.maximum.accumulate(np.where(start, np.arange(len(k)), 0))
    pos = np.arange(len(k)) - run_start
    pairs = []
    # Of a band key's texts, the first BUCKET are compared with every later one (see find_duplicates).
    for q in range(BUCKET):
        later = np.flatnonzero(pos > q)
        i, j = s[later], s[run_start[later] + q]
        keep = group[i] != group[j]
        pairs.append(np.stack((i[keep], j[keep]), axis=1))
    cand = np.concatenate(pairs)  # a pair sharing several keys repeats: cheaper than a unique
    if not len(cand):
        return cand
    found = []
    for c in range(0, len(cand), 200_000):
        part = cand[c:c + 200_000]
        same = (values[part[:, 0]] == values[part[:, 1]]).sum(axis=1)
        # A seed partner is always checked exactly: paraphrases of seeds are what matters most.
        found.append(part[(same >= (threshold - GATE) * VALUES) | ~droppable[group[part[:, 1]]]])
    return np.concatenate(found)
