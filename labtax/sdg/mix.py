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


@dataclass
class MixLeaf:
    """One current leaf's data: path-free stored samples plus where the leaf lives now."""

    path: str
    kind: str
    key: str
    samples: list[dict[str, Any]]
    test: list[dict[str, Any]]


@dataclass
class MixedSets:
    phase1: list[dict[str, Any]] = field(default_factory=list)
    phase2: list[dict[str, Any]] = field(default_factory=list)
    test: list[dict[str, Any]] = field(default_factory=list)
    # per leaf path: {"samples": stored, "train": in the sets, "test": n, "replay": n, "overlap": n}
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def by_file(self) -> dict[str, list[dict[str, Any]]]:
        return {PHASE1: self.phase1, PHASE2: self.phase2, TEST: self.test}


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


def normalise_question(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def _user_index(sample: dict[str, Any]) -> int | None:
    msgs = sample.get("messages") or []
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].get("role") == "user":
            return i
    return None


def question_of(sample: dict[str, Any]) -> str:
    """The question alone: `metadata.question` when the pipeline kept it, else the last user turn."""
    meta = sample.get("metadata") or {}
    q = meta.get("question")
    if isinstance(q, str) and q.strip():
        return q
    i = _user_index(sample)
    return str(sample["messages"][i].get("content", "")) if i is not None else ""


def chunk_of(sample: dict[str, Any]) -> str:
    """The document chunk a knowledge sample is grounded in ('' when the pipeline recorded none)."""
    meta = sample.get("metadata") or {}
    # The pipelines record the chunk text as `context` (and its index as `chunk`).
    for name in ("context", "chunk"):
        v = meta.get(name)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return ""


def _stamp(sample: dict[str, Any], path: str, kind: str) -> dict[str, Any]:
    """A copy with the current leaf path and kind (stored data is path-free: renames reuse it)."""
    meta = dict(sample.get("metadata") or {})
    meta["leaf"] = path
    meta["kind"] = kind
    out = dict(sample)
    out["metadata"] = meta
    return out


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


# -------------------------------------------------------------------------------------- mixing


def build_sets(leaves: Sequence[MixLeaf], settings: MixSettings) -> MixedSets:
    sets = MixedSets()
    ordered = sorted(leaves, key=lambda leaf: leaf.path)

    # Test first: every training sample whose question is a test question is left out below.
    test_questions: set[str] = set()
    for leaf in ordered:
        for s in leaf.test:
            stamped = _stamp(s, leaf.path, leaf.kind)
            stamped["metadata"]["source"] = "seed"
            sets.test.append(stamped)
            test_questions.add(normalise_question(question_of(s)))
            i = _user_index(s)
            if i is not None:
                test_questions.add(normalise_question(str(s["messages"][i].get("content", ""))))

    knowledge: list[tuple[str, dict[str, Any]]] = []  # (leaf path, sample) in order
    for leaf in ordered:
        c = sets.counts[leaf.path] = {"samples": len(leaf.samples), "train": 0, "test": len(leaf.test),
                                      "replay": 0, "overlap": 0}
        for s in leaf.samples:
            q = normalise_question(question_of(s))
            i = _user_index(s)
            full = normalise_question(str(s["messages"][i].get("content", ""))) if i is not None else ""
            if q in test_questions or full in test_questions:
                c["overlap"] += 1
                continue
            c["train"] += 1
            stamped = _stamp(s, leaf.path, leaf.kind)
            if leaf.kind == "knowledge":
                stamped = _knowledge_phase1(stamped)
                sets.phase1.append(stamped)
                knowledge.append((leaf.path, stamped))
            else:
                sets.phase2.append(stamped)

    n_skills = len(sets.phase2)
    n_replay = min(len(knowledge), math.ceil(settings.replay_ratio * n_skills)) if n_skills else 0
    if n_replay:
        rng = random.Random(f"labtax-replay-{settings.seed}")
        picked = sorted(rng.sample(range(len(knowledge)), n_replay))
        chunks = sorted({chunk_of(s) for _, s in knowledge if chunk_of(s)})
        for idx in picked:
            path, s = knowledge[idx]
            sets.phase2.append(_replay(s, chunks, settings, rng))
            sets.counts[path]["replay"] += 1
    return sets


def _knowledge_phase1(sample: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 form: loss on every token (`unmask: true`), the chunk above the question."""
    chunk = chunk_of(sample)
    i = _user_index(sample)
    user = str(sample["messages"][i].get("content", "")) if i is not None else ""
    if chunk and chunk not in user:
        sample = _with_user(sample, _user_turn(chunk, question_of(sample)))
    sample["unmask"] = True
    return sample


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


def encode_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
        for r in rows
    )


def write_sets(output: Path, sets: MixedSets) -> dict[str, dict[str, Any]]:
    """Write the three set files atomically; returns {file: {samples, bytes, sha256}} for the manifest."""
    info: dict[str, dict[str, Any]] = {}
    for name, rows in sets.by_file().items():
        data = encode_jsonl(rows)
        atomic_write_bytes(output / name, data)
        info[name] = {"samples": len(rows), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return info


def sets_fingerprint(leaves: Sequence[tuple[str, str, str]], settings: MixSettings) -> str:
    """What the sets are a function of: (path, kind, key) of every current leaf and the mix settings."""
    payload = {"v": MIX_VERSION, "leaves": sorted(leaves), "mix": settings.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sets_intact(output: Path, manifest: dict[str, Any]) -> bool:
    """True when every set file named in `manifest` exists with the recorded checksum."""
    sets = manifest.get("sets") or {}
    if set(sets) != set(SET_FILES):
        return False
    for name, meta in sets.items():
        path = output / name
        try:
            if path.stat().st_size != meta.get("bytes"):
                return False
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
