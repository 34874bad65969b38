"""Mixing: the training sets, the test set and the manifest, built from the leaves' stored data.

Inputs are plain dicts (samples in the messages format), so this module knows nothing of teachers,
git or the store's file format. Outputs, in `<output>/`:

  phase1_knowledge.jsonl  every knowledge sample, `unmask: true`, its chunk in the user turn.
  phase2_skills.jsonl     every skill sample, then a knowledge replay share: min(all knowledge,
                          ceil(replay_ratio * number of skill samples)) samples drawn with the seed;
                          each replayed question comes after `distractors` other chunks of the
                          knowledge data, plus (with probability replay_context_prob) its own chunk,
                          in shuffled order, as the LAB/RAFT recipe does.
  test.jsonl              the seed examples (never generated data), one Q&A per line.
  manifest.json           written last (see `build_manifest`).

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

from labtax.sdg.store import atomic_write_bytes
from labtax.taxonomy.model import Leaf

MIX_VERSION = 1
# The form `prepare_leaf` stores; part of every content key, so a change regenerates stale data.
STORE_FORMAT = 1
PHASE1 = "phase1_knowledge.jsonl"
PHASE2 = "phase2_skills.jsonl"
TEST = "test.jsonl"
MANIFEST = "manifest.json"
SET_FILES = (PHASE1, PHASE2, TEST)


@dataclass(frozen=True)
class MixSettings:
    replay_ratio: float = 0.03  # knowledge replay in phase 2, as a share of the skill samples
    replay_context_prob: float = 0.4  # how often a replayed question sees its own chunk (ilab: 0.4)
    distractors: int = 3  # other chunks shown with each replayed question
    seed: int = 42

    def __post_init__(self) -> None:
        if self.replay_ratio < 0:
            raise ValueError("replay_ratio must be >= 0")
        if not 0.0 <= self.replay_context_prob <= 1.0:
            raise ValueError("replay_context_prob must be in [0, 1]")
        if self.distractors < 0:
            raise ValueError("distractors must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        return dict(sorted(asdict(self).items()))


# ------------------------------------------------------------------------------ test set (seeds)


def _user_turn(context: str | None, question: str) -> str:
    context = (context or "").strip()
    question = question.strip()
    return f"{context}\n\n{question}" if context else question


def seed_test_samples(leaf: Leaf) -> list[dict[str, Any]]:
    """The leaf's seed examples as test samples (path-free; `metadata.leaf` is stamped by the mixer).

    Skills: one sample per seed example, its context (grounded skills) above the question.
    Knowledge: one sample per question-answer pair of each seed example, the example's context above.
    """
    out: list[dict[str, Any]] = []
    seeds = leaf.data.get("seed_examples") or []
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict):
            continue
        if leaf.kind == "knowledge":
            context = str(seed.get("context") or "")
            for j, qa in enumerate(seed.get("questions_and_answers") or []):
                if isinstance(qa, dict) and qa.get("question") and qa.get("answer"):
                    out.append(_seed_sample(leaf.kind, context, str(qa["question"]), str(qa["answer"]), i, j))
        elif seed.get("question") and seed.get("answer"):
            context = str(seed.get("context") or "") or None
            out.append(_seed_sample(leaf.kind, context, str(seed["question"]), str(seed["answer"]), i, None))
    return out


def _seed_sample(kind: str, context: str | None, question: str, answer: str, i: int,
                 j: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"kind": kind, "source": "seed", "seed_index": i, "question": question.strip()}
    if j is not None:
        meta["qa_index"] = j
    if context:
        meta["context"] = context.strip()
    return {
        "messages": [
            {"role": "user", "content": _user_turn(context, question)},
            {"role": "assistant", "content": answer.strip()},
        ],
        "metadata": meta,
        "unmask": False,
    }


# ------------------------------------------------------------------------------------ helpers

_WS = re.compile(r"\s+")

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


def _user_index(sample: dict[str, Any]) -> int | None:
    msgs = sample.get("messages") or []
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].get("role") == "user":
            return i
    return None


def _user_text(sample: dict[str, Any]) -> str:
    i = _user_index(sample)
    return str(sample["messages"][i].get("content", "")) if i is not None else ""


def question_of(sample: dict[str, Any]) -> str:
    """The question alone: `metadata.question` when the pipeline kept it, else the last user turn."""
    meta = sample.get("metadata") or {}
    q = meta.get("question")
    if isinstance(q, str) and q.strip():
        return q
    return _user_text(sample)


def chunk_of(sample: dict[str, Any]) -> str:
    """The document chunk a knowledge sample is grounded in ('' when the pipeline recorded none)."""
    meta = sample.get("metadata") or {}
    # The pipelines record the chunk text as `context` (and its index as `chunk`).
    for name in ("context", "chunk"):
        v = meta.get(name)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return ""


def _with_user(sample: dict[str, Any], content: str) -> dict[str, Any]:
    i = _user_index(sample)
    msgs = [dict(m) for m in sample.get("messages") or []]
    if i is None:
        msgs.insert(0, {"role": "user", "content": content})
    else:
        msgs[i]["content"] = content
    out = dict(sample)
    out["messages"] = msgs
    return out


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
            c = chunk_of(s)
            if c and c not in chunk_ids:
                chunk_ids[c] = len(chunks)
                chunks.append(c)
        out.append(s)
        q_hashes.append(text_hash(question_of(s)))
        u_hashes.append(text_hash(_user_text(s)))
    tests = []
    t_hashes: list[str] = []
    for t in test:
        t = _stamp(t, kind)
        t["metadata"]["source"] = "seed"
        tests.append(t)
        t_hashes += [text_hash(question_of(t)), text_hash(_user_text(t))]
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
    if chunk and chunk not in _user_text(sample):
        sample = _with_user(sample, _user_turn(chunk, question_of(sample)))
    sample["unmask"] = True
    return sample


# -------------------------------------------------------------------------------------- mixing


@dataclass
class MixLeaf:
    """One current leaf's stored data (encoded lines, as in the store) and where the leaf lives now."""

    path: str
    kind: str
    key: str
    lines: list[bytes]  # training samples, one JSON object each, no newline
    test: list[bytes]
    index: dict[str, Any]

    @classmethod
    def from_samples(cls, path: str, kind: str, key: str, samples: Sequence[dict[str, Any]],
                     test: Sequence[dict[str, Any]] = ()) -> MixLeaf:
        p = prepare_leaf(kind, samples, test)
        return cls(path, kind, key, [dumps_line(s) for s in p.samples], [dumps_line(t) for t in p.test], p.index)


@dataclass
class MixedSets:
    phase1: list[bytes] = field(default_factory=list)
    phase2: list[bytes] = field(default_factory=list)
    test: list[bytes] = field(default_factory=list)
    # per leaf path: {"samples": stored, "train": in the sets, "test": n, "replay": n, "overlap": n}
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def by_file(self) -> dict[str, list[bytes]]:
        return {PHASE1: self.phase1, PHASE2: self.phase2, TEST: self.test}


def build_sets(leaves: Sequence[MixLeaf], settings: MixSettings) -> MixedSets:
    sets = MixedSets()
    ordered = sorted(leaves, key=lambda leaf: leaf.path)

    # Test first: every training sample whose question (or whole user turn) is a test question's is
    # left out below, so no sample is in both train and test.
    test_hashes: set[str] = set()
    for leaf in ordered:
        path = json.dumps(leaf.path, ensure_ascii=False).encode("utf-8")
        sets.test += [line.replace(_PLACEHOLDER_BYTES, path) for line in leaf.test]
        test_hashes.update(leaf.index.get("test") or [])

    knowledge: list[tuple[MixLeaf, int]] = []  # (leaf, line index) of every kept knowledge sample
    all_chunks: set[str] = set()
    for leaf in ordered:
        path = json.dumps(leaf.path, ensure_ascii=False).encode("utf-8")
        c = sets.counts[leaf.path] = {"samples": len(leaf.lines), "train": 0, "test": len(leaf.test),
                                      "replay": 0, "overlap": 0}
        target = sets.phase1 if leaf.kind == "knowledge" else sets.phase2
        for i, (line, qh, uh) in enumerate(zip(leaf.lines, leaf.index["q"], leaf.index["u"])):
            if qh in test_hashes or uh in test_hashes:
                c["overlap"] += 1
                continue
            c["train"] += 1
            target.append(line.replace(_PLACEHOLDER_BYTES, path))
            if leaf.kind == "knowledge":
                knowledge.append((leaf, i))
        if leaf.kind == "knowledge":
            all_chunks.update(leaf.index.get("chunks") or [])

    n_skills = len(sets.phase2)
    n_replay = min(len(knowledge), math.ceil(settings.replay_ratio * n_skills)) if n_skills else 0
    if n_replay:
        rng = random.Random(f"labtax-replay-{settings.seed}")
        picked = sorted(rng.sample(range(len(knowledge)), n_replay))
        chunks = sorted(all_chunks)
        for idx in picked:
            leaf, i = knowledge[idx]
            sample = json.loads(leaf.lines[i])
            sample["metadata"]["leaf"] = leaf.path
            sets.phase2.append(dumps_line(_replay(sample, chunks, settings, rng)))
            sets.counts[leaf.path]["replay"] += 1
    return sets


def _replay(sample: dict[str, Any], chunks: list[str], settings: MixSettings,
            rng: random.Random) -> dict[str, Any]:
    """A replayed knowledge sample: the question after distractor chunks, its own chunk among them
    part of the time (the model must then find it, else answer from what it learned)."""
    own = chunk_of(sample)
    others = [c for c in chunks if c != own]
    distractors = rng.sample(others, min(settings.distractors, len(others)))
    with_own = bool(own) and rng.random() < settings.replay_context_prob
    docs = distractors + ([own] if with_own else [])
    rng.shuffle(docs)
    prefix = "".join(f"Document:\n{d}\n\n" for d in docs)
    out = _with_user(sample, prefix + question_of(sample).strip())
    out["unmask"] = False
    meta = dict(out.get("metadata") or {})
    meta["replay"] = True
    meta["replay_with_chunk"] = with_own
    out["metadata"] = meta
    return out


# ------------------------------------------------------------------------------------- writing


def encode_jsonl(rows: Sequence[bytes]) -> bytes:
    return b"".join(r + b"\n" for r in rows)


def write_sets(output: Path, sets: MixedSets) -> dict[str, dict[str, Any]]:
    """Write the three set files atomically; returns {file: {samples, bytes, sha256, mtime_ns}}."""
    info: dict[str, dict[str, Any]] = {}
    for name, rows in sets.by_file().items():
        data = encode_jsonl(rows)
        atomic_write_bytes(output / name, data)
        info[name] = {"samples": len(rows), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "mtime_ns": (output / name).stat().st_mtime_ns}
    return info


def sets_fingerprint(leaves: Sequence[tuple[str, str, str]], settings: MixSettings) -> str:
    """What the sets are a function of: (path, kind, key) of every current leaf and the mix settings."""
    payload = {"v": MIX_VERSION, "leaves": sorted(leaves), "mix": settings.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sets_intact(output: Path, manifest: dict[str, Any], *, full: bool = False) -> bool:
    """True when every set file named in `manifest` is the one it recorded: same size and mtime (a
    rewrite changes them), or with `full` the same sha256."""
    sets = manifest.get("sets") or {}
    if set(sets) != set(SET_FILES):
        return False
    for name, meta in sets.items():
        path = output / name
        try:
            st = path.stat()
            if st.st_size != meta.get("bytes"):
                return False
            if full or st.st_mtime_ns != meta.get("mtime_ns"):
                if hashlib.sha256(path.read_bytes()).hexdigest() != meta.get("sha256"):
                    return False
        except OSError:
            return False
    return True


def read_manifest(output: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(output / MANIFEST, text.encode("utf-8"))
