"""Mixing: the training sets, the test set and the manifest, built from the leaves' stored data.

Inputs are plain dicts (samples in the messages format), so this module knows nothing of teachers,
git or the store's file format. Outputs, in `<output>/`:

  phase1_knowledge.jsonl  every knowledge sample, `unmask: true`, its chunk in the user turn.
  phase2_skills.jsonl     every skill sample, then a knowledge replay share: min(all knowledge,
                          ceil(replay_ratio * number of skill samples)) samples drawn with the seed;
                          each replayed question comes after `distractors` other chunks of the
                          knowledge data, plus (with probability replay_context_prob) its own chunk,
                          in shuffled order, as the LAB/RAFT recipe does.
  test.jsonl              the gate's held-out items: the seed examples (knowledge ones closed-book:
                          the question alone, no context) and the multiple-choice items the knowledge
                          pipeline wrote (`choices`, `answer_index`); never trained on.
  validation.jsonl        generated rows held out of training for checkpoint selection (the rows past
                          each leaf's quota; `metadata.split: "validation"`): never the gate's items.
  manifest.json           written last by `sdg.running.rebuild` (the record: `labtax.data.manifest`).

Every choice is drawn from `random.Random` seeded with strings (stable across Python versions and
processes), and inputs are sorted by leaf path, so the sets are byte-identical for the same leaves,
data and seed. A training sample whose question equals a test question is left out of the sets.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labtax.data import PHASE1, PHASE2, SET_FILES, TEST, VALIDATION, Manifest
from labtax.data.sample import chunk_of, question_of, slim, user_text, with_user
from labtax.sdg.held_out import user_turn
from labtax.util.atomic import atomic_write_chunks

MIX_VERSION = 3  # 2: slim metadata (question_at), replays carry no context; 3: the validation split


@dataclass(frozen=True)
class MixSettings:
    replay_ratio: float = 0.03  # knowledge replay in phase 2, as a share of the skill samples
    replay_context_prob: float = 0.4  # how often a replayed question sees its own chunk (ilab: 0.4)
    distractors: int = 3  # other chunks shown with each replayed question
    seed: int = 42

    def __post_init__(self) -> None:
        for ok, problem in ((self.replay_ratio >= 0, "replay_ratio must be >= 0"),
                            (0.0 <= self.replay_context_prob <= 1.0, "replay_context_prob must be in [0, 1]"),
                            (self.distractors >= 0, "distractors must be >= 0")):
            if not ok:
                raise ValueError(problem)

    def as_dict(self) -> dict[str, Any]:
        return dict(sorted(asdict(self).items()))


# ------------------------------------------------------------------------------ test set (seeds)


# ------------------------------------------------------------------------------------ helpers

_WS = re.compile(r"\s+")
# How a validation row looks in a stored line (keys sorted, compact): a text holding these bytes would
# have its quotes escaped, so only the metadata key matches.
_VALIDATION_MARK = b'"split":"validation"'

# Stored samples are path-free: `metadata.leaf` holds this placeholder, which the mixer replaces
# with the leaf's current path as bytes (no JSON decoding of 100,000 samples per rebuild). NULs
# never occur in a path or in text the pipelines keep, so the encoded form cannot collide.
LEAF_PLACEHOLDER = "\x00labtax:leaf\x00"
_PLACEHOLDER_BYTES = json.dumps(LEAF_PLACEHOLDER).encode("utf-8")


def dumps_line(obj: Any) -> bytes:
    """The one JSON encoding used for stored samples and set lines: sorted keys, compact, UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def normalise_question(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def text_hash(text: str) -> str:
    """A short hash of a normalised text, for the train/test overlap check."""
    return hashlib.sha1(normalise_question(text).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------- preparing leaf data


@dataclass
class PreparedLeaf:
    """A leaf's data in the form the store keeps and the mixer reads: path-free samples (knowledge
    ones already in phase-1 form) plus an index so mixing needs no JSON decoding: per training sample
    the hashes of its question and user turn, the hashes of the test questions, and for knowledge the
    distinct chunks (the replay's distractors)."""

    samples: list[dict[str, Any]]
    test: list[dict[str, Any]]
    index: dict[str, Any]


def prepare_leaf(kind: str, samples: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]]) -> PreparedLeaf:
    chunks: list[str] = []
    chunk_ids: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    q_hashes: list[str] = []
    u_hashes: list[str] = []
    for s in samples:
        s = _stamp(s, kind)
        if kind == "knowledge":
            s = _knowledge_phase1(s)
        s = slim(s)
        if kind == "knowledge":
            c = chunk_of(s)
            if c and c not in chunk_ids:
                chunk_ids[c] = len(chunks)
                chunks.append(c)
        out.append(s)
        q_hashes.append(text_hash(question_of(s)))
        u_hashes.append(text_hash(user_text(s)))
    tests = []
    t_hashes: list[str] = []
    for t in test:
        t = _stamp(t, kind)
        if t["metadata"].get("split") == "validation":
            # A held-out generated row: in training form (the sets it validates), not a test item.
            tests.append(slim(_knowledge_phase1(t) if kind == "knowledge" else t))
            continue
        t["metadata"].setdefault("source", "seed")
        t = slim(t)
        tests.append(t)
        t_hashes += [text_hash(question_of(t)), text_hash(user_text(t))]
    index = {"q": q_hashes, "u": u_hashes, "test": sorted(set(t_hashes))}
    if kind == "knowledge":
        index["chunks"] = chunks
    return PreparedLeaf(out, tests, index)


def _stamp(sample: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy with the path placeholder and the kind (stored data is path-free: renames reuse it)."""
    meta = dict(sample.get("metadata") or {})
    meta["leaf"] = LEAF_PLACEHOLDER
    meta["kind"] = kind
    out = dict(sample)
    out["metadata"] = meta
    return out


def _knowledge_phase1(sample: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 form: loss on every token (`unmask: true`), the chunk above the question."""
    chunk = chunk_of(sample)
    if chunk and chunk not in user_text(sample):
        sample = with_user(sample, user_turn(chunk, question_of(sample)))
    sample["unmask"] = True
    return sample


# -------------------------------------------------------------------------------------- mixing


@dataclass
class MixLeaf:
    """One current leaf's stored data, as the store keeps it (encoded JSON lines, each ending in a
    newline, `metadata.leaf` a placeholder), and where the leaf lives now. `data[train_span]` holds the
    training lines, `data[test_span]` the test lines (the store hands over its file unsliced)."""

    path: str
    kind: str
    key: str
    data: bytes
    train_span: tuple[int, int]
    test_span: tuple[int, int]
    index: dict[str, Any]
    _lines: list[bytes] | None = field(default=None, repr=False)

    @classmethod
    def from_samples(cls, path: str, kind: str, key: str, samples: Sequence[dict[str, Any]],
                     test: Sequence[dict[str, Any]] = ()) -> MixLeaf:
        p = prepare_leaf(kind, samples, test)
        train = encode_jsonl([dumps_line(s) for s in p.samples])
        tests = encode_jsonl([dumps_line(t) for t in p.test])
        n = len(train)
        return cls(path, kind, key, train + tests, (0, n), (n, n + len(tests)), p.index)

    def lines(self) -> list[bytes]:
        """The training lines (without newlines), split on first use."""
        if self._lines is None:
            a, b = self.train_span
            self._lines = self.data[a:b].split(b"\n")[:-1]
        return self._lines

    def stamped(self) -> tuple[memoryview, memoryview, int]:
        """(training lines, test lines, number of test lines) with the current path in place of the
        placeholder: one replace over the whole buffer, no per-line work."""
        path = json.dumps(self.path, ensure_ascii=False).encode("utf-8")
        (a, b), (c, d) = self.train_span, self.test_span
        grow = len(path) - len(_PLACEHOLDER_BYTES)
        count = self.data.count
        shift_a = count(_PLACEHOLDER_BYTES, 0, a) * grow
        shift_b = shift_a + count(_PLACEHOLDER_BYTES, a, b) * grow
        shift_c = shift_b + count(_PLACEHOLDER_BYTES, b, c) * grow
        shift_d = shift_c + count(_PLACEHOLDER_BYTES, c, d) * grow
        view = memoryview(self.data.replace(_PLACEHOLDER_BYTES, path))
        return view[a + shift_a : b + shift_b], view[c + shift_c : d + shift_d], self.data.count(b"\n", c, d)


@dataclass
class MixedSets:
    """The sets as lists of byte chunks (each a run of whole lines) plus their sample counts."""

    phase1: list[bytes | memoryview] = field(default_factory=list)
    phase2: list[bytes | memoryview] = field(default_factory=list)
    test: list[bytes | memoryview] = field(default_factory=list)
    validation: list[bytes | memoryview] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=lambda: {PHASE1: 0, PHASE2: 0, TEST: 0, VALIDATION: 0})
    # per leaf path: {"samples": stored, "train": in the sets, "test": n, "replay": n, "overlap": n}, plus
    # "validation": n for a leaf with validation rows
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def by_file(self) -> dict[str, list[bytes | memoryview]]:
        return {PHASE1: self.phase1, PHASE2: self.phase2, TEST: self.test, VALIDATION: self.validation}


def build_sets(leaves: Sequence[MixLeaf], settings: MixSettings) -> MixedSets:
    """Mix the sets. The common case copies each leaf's stored lines in one piece, replacing the path
    placeholder; only a leaf with train/test overlaps and the few replayed samples are split/decoded."""
    sets = MixedSets()
    ordered = sorted(leaves, key=lambda leaf: leaf.path)

    # Test first: every training sample whose question (or whole user turn) is a test question's is
    # left out below, so no sample is in both train and test.
    test_hashes: set[str] = set()
    stamped: dict[str, memoryview] = {}
    for leaf in ordered:
        train, test, n_test = leaf.stamped()
        stamped[leaf.path] = train
        n_val = 0
        if _VALIDATION_MARK in bytes(test):  # a leaf's few test lines: the copy is cheap
            lines = bytes(test).split(b"\n")[:-1]
            held = [line + b"\n" for line in lines if _VALIDATION_MARK in line]
            n_val = len(held)
            sets.validation.append(b"".join(held))
            test = b"".join(line + b"\n" for line in lines if _VALIDATION_MARK not in line)  # type: ignore[assignment]
            n_test -= n_val
        sets.test.append(test)
        sets.samples[TEST] += n_test
        sets.samples[VALIDATION] += n_val
        sets.counts[leaf.path] = {"samples": len(leaf.index["q"]), "train": 0, "test": n_test, "replay": 0,
                                  "overlap": 0, **({"validation": n_val} if n_val else {})}
        test_hashes.update(leaf.index.get("test") or [])

    # Kept knowledge samples, for the replay: (leaf, its kept line numbers), in order.
    knowledge: list[tuple[MixLeaf, list[int]]] = []
    all_chunks: set[str] = set()
    for leaf in ordered:
        q, u = leaf.index["q"], leaf.index["u"]
        n = len(q)
        c = sets.counts[leaf.path]
        target, name = (sets.phase1, PHASE1) if leaf.kind == "knowledge" else (sets.phase2, PHASE2)
        if test_hashes.isdisjoint(q) and test_hashes.isdisjoint(u):
            kept = list(range(n))
            target.append(stamped[leaf.path])
        else:
            kept = [i for i in range(n) if q[i] not in test_hashes and u[i] not in test_hashes]
            lines = bytes(stamped[leaf.path]).split(b"\n")
            target.append(b"".join(lines[i] + b"\n" for i in kept))
            c["overlap"] = n - len(kept)
        c["train"] = len(kept)
        sets.samples[name] += len(kept)
        if leaf.kind == "knowledge":
            knowledge.append((leaf, kept))
            all_chunks.update(leaf.index.get("chunks") or [])

    n_knowledge = sum(len(kept) for _, kept in knowledge)
    n_skills = sets.samples[PHASE2]
    n_replay = min(n_knowledge, math.ceil(settings.replay_ratio * n_skills)) if n_skills else 0
    if n_replay:
        rng = random.Random(f"labtax-replay-{settings.seed}")
        picked = sorted(rng.sample(range(n_knowledge), n_replay))
        chunks = sorted(all_chunks)
        flat = ((leaf, i) for leaf, kept in knowledge for i in kept)
        replays: list[bytes] = []
        pos = -1
        for target_pos in picked:
            while pos < target_pos:
                leaf, i = next(flat)
                pos += 1
            sample = json.loads(leaf.lines()[i])
            sample["metadata"]["leaf"] = leaf.path
            replays.append(dumps_line(_replay(sample, chunks, settings, rng)) + b"\n")
            sets.counts[leaf.path]["replay"] += 1
        sets.phase2.append(b"".join(replays))
        sets.samples[PHASE2] += len(replays)
    return sets


def _replay(sample: dict[str, Any], chunks: list[str], settings: MixSettings,
            rng: random.Random) -> dict[str, Any]:
    """A replayed knowledge sample: the question after distractor chunks, its own chunk among them
    part of the time (the model must then find it, else answer from what it learned)."""
    own = chunk_of(sample)
    # Draw one spare index so that skipping the sample's own chunk still leaves enough distractors.
    k = settings.distractors
    picks = rng.sample(range(len(chunks)), min(k + 1, len(chunks)))
    distractors = [chunks[j] for j in picks if chunks[j] != own][:k]
    with_own = bool(own) and rng.random() < settings.replay_context_prob
    docs = distractors + ([own] if with_own else [])
    rng.shuffle(docs)
    prefix = "".join(f"Document:\n{d}\n\n" for d in docs)
    question = question_of(sample).strip()
    out = with_user(sample, prefix + question)
    out["unmask"] = False
    meta = dict(out.get("metadata") or {})
    if "question" not in meta:
        meta["question_at"] = len(prefix)
    meta.pop("context", None)  # the chunks shown are in the turn; the replay never reads it back
    meta["replay"] = True
    meta["replay_with_chunk"] = with_own
    out["metadata"] = meta
    return out


# ------------------------------------------------------------------------------------- writing


def encode_jsonl(rows: Sequence[bytes]) -> bytes:
    return b"".join(r + b"\n" for r in rows)


def write_sets(output: Path, sets: MixedSets) -> dict[str, dict[str, Any]]:
    """Write the set files atomically; returns {file: {samples, bytes, sha256, mtime_ns}}."""
    info: dict[str, dict[str, Any]] = {}
    for name, chunks in sets.by_file().items():
        if name == VALIDATION and not sets.samples[VALIDATION]:
            # No held-out rows: no file (a stale one from an earlier run would be read as current).
            (output / name).unlink(missing_ok=True)
            continue
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        atomic_write_chunks(output / name, chunks)
        st = (output / name).stat()
        info[name] = {"samples": sets.samples[name], "bytes": st.st_size, "sha256": digest.hexdigest(),
                      "mtime_ns": st.st_mtime_ns}
    return info


def sets_fingerprint(leaves: Sequence[tuple[str, str, str]], settings: MixSettings) -> str:
    """What the sets are a function of: (path, kind, key) of every current leaf and the mix settings."""
    payload = {"v": MIX_VERSION, "leaves": sorted(leaves), "mix": settings.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sets_intact(output: Path, manifest: Manifest, *, full: bool = False) -> bool:
    """True when every set file named in `manifest` is the one it recorded: same size and mtime (a
    rewrite changes them), or with `full` the same sha256."""
    sets = manifest.get("sets") or {}
    if not set(SET_FILES) <= set(sets) <= {*SET_FILES, VALIDATION}:
        return False
    if VALIDATION not in sets and (output / VALIDATION).exists():
        return False
    for name, meta in sets.items():
        path = output / name
        try:
            st = path.stat()
            if st.st_size != meta.get("bytes"):
                return False
            if (full or st.st_mtime_ns != meta.get("mtime_ns")) and hashlib.sha256(
                path.read_bytes()
            ).hexdigest() != meta.get("sha256"):
                return False
        except OSError:
            return False
    return True
