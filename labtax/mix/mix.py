"""Mixing: the training sets, the test set and the manifest, built from the leaves' stored data.

Inputs are plain dicts (samples in the messages format), so this module knows nothing of teachers,
git or the store's file format. Outputs, in `<output>/`:

  phase1_knowledge.jsonl  per trained wording of a knowledge fact its open-book row (`unmask: true`, its
                          chunk in the user turn) and its closed-book row (the question alone, loss
                          on the answer); per distinct chunk the passage itself (`unmask: true`);
                          counts set by `open_book_rows`, `closed_book_rows`, `document_rows`.
  phase2_skills.jsonl     every skill sample, the rows of `--replay-data`, then the knowledge replay
                          (mix/knowledge_replay.py: the ratio and the per-leaf minimum are floors, every
                          knowledge leaf is represented; distractors from the same leaf's chunks; an
                          unmasked copy after each replayed row).
  test.jsonl              the gate's held-out items: the seed examples (knowledge ones closed-book:
                          the question alone, no context) and the multiple-choice items the knowledge
                          pipeline wrote (`choices`, `answer_index`); and per knowledge fact with
                          >= 2 wordings one wording asked closed book (`source: "held_out"`,
                          `closed_book: true`); never trained on in any phase.
  validation.jsonl        generated rows held out of training for checkpoint selection (the rows past
                          each leaf's quota; `metadata.split: "validation"`): never the gate's items.
  phase1_knowledge_step{1,2}.jsonl  `--phase1 two-step` only: the paper's two steps of phase 1
                          (mix/phase1_steps.py: short answers; long ones + foundational skills + replay).
  manifest.json           written last by `sdg.running.rebuild` (the record: `labtax.data.manifest`).
Every sample of the sets begins with the fixed system turn `system_prompt`. Near-duplicates across
the whole taxonomy (and paraphrases of any leaf's seeds) are left out (mix/xdedup.py).

Every choice is drawn from `random.Random` seeded with strings (stable across Python versions and
processes), and inputs are sorted by leaf path, so the sets are byte-identical for the same leaves,
data and seed. A training sample whose question equals a test question is left out of the sets.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labtax.data import PHASE1, PHASE2, SET_FILES, STEP_FILES, TEST, VALIDATION, SetFile
from labtax.data.sample import chunk_of, question_of, slim, user_text, with_user
from labtax.mix import knowledge_replay as rp
from labtax.mix.held_out import choose_held_out, closed_book_row, document_row, user_turn
from labtax.mix.knowledge_replay import DEFAULT_SYSTEM_PROMPT
from labtax.mix.phase1_steps import PHASE1_MODES, split_steps, step_defaults
from labtax.mix.xdedup import dedup_text, find_duplicates, signature, stored_signatures, text_at
from labtax.util.atomic import atomic_write_chunks
from labtax.util.quoting import quote_path

MIX_VERSION = 5  # 2: slim metadata (question_at); 3: the validation split; 4: the recipe's replay, system
# turn and taxonomy-wide dedup; 5: knowledge rows that teach recall (closed book, documents, held out)


@dataclass(frozen=True)
class MixSettings:
    replay_ratio: float = 0.03  # knowledge replay in phase 2: at least this share of the skill samples
    replay_min_per_leaf: int = 1  # ... and at least this many rows of every knowledge leaf (docs/train.md)
    replay_context_prob: float = 0.4  # how often a replayed question sees its own chunk (ilab: 0.4)
    distractors: int = 3  # other chunks of the same leaf shown with each replayed question
    replay_unmasked_copy: bool = True  # each replayed row's phase-1 form (loss on all tokens) too
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # the first turn of every sample; "" for none
    dedup_threshold: float = 0.7  # content-word Jaccard of a taxonomy-wide near-duplicate; 1.0: off
    replay_data: str = ""  # a JSONL file of precomputed skills data for phase 2 (messages format)
    # Phase 1's knowledge rows (docs/diff-generate.md "Rows that teach recall"): per trained wording of
    # a fact, its open-book row (chunk + question -> answer, loss on every token) and its closed-book
    # row (question alone -> answer); per distinct chunk of the leaf, the passage itself as an unmasked
    # row. Open-book rows teach reading a passage, not recalling it (RAFT); recall from a new wording
    # needs the fact in several phrasings (bench/learning_bench.py measured the balance: docs/train.md).
    open_book_rows: int = 1
    closed_book_rows: int = 1
    document_rows: int = 1
    hold_out: bool = True  # one wording of each fact with >= 2 becomes a closed-book test row
    seed: int = 42
    phase1: str = "one-step"  # "two-step": also the paper's two step sets (mix/phase1_steps.py)
    short_answer_max_words: int = field(default_factory=lambda: step_defaults()["short_answer_max_words"])
    step1_replay: float = field(default_factory=lambda: step_defaults()["step1_replay"])

    def __post_init__(self) -> None:
        for ok, problem in ((self.replay_ratio >= 0, "replay_ratio must be >= 0"),
                            (self.replay_min_per_leaf >= 0, "replay_min_per_leaf must be >= 0"),
                            (0.0 < self.dedup_threshold <= 1.0, "dedup_threshold must be in (0, 1]"),
                            (0.0 <= self.replay_context_prob <= 1.0, "replay_context_prob must be in [0, 1]"),
                            (self.distractors >= 0, "distractors must be >= 0"),
                            (min(self.open_book_rows, self.closed_book_rows, self.document_rows) >= 0,
                             "open_book_rows, closed_book_rows and document_rows must be >= 0"),
                            (self.phase1 in PHASE1_MODES, f"phase1 must be one of {', '.join(PHASE1_MODES)}"),
                            (self.short_answer_max_words >= 1, "short_answer_max_words must be >= 1"),
                            (0.0 <= self.step1_replay <= 1.0, "step1_replay must be in [0, 1]")):
            if not ok:
                raise ValueError(problem)

    def as_dict(self) -> dict[str, Any]:
        """Sorted, JSON-ready (the manifest's `mix`, the sets' fingerprint). The two-step thresholds
        only with `phase1: two-step`: unused, they would rebuild one-step sets for nothing."""
        data = asdict(self)
        if self.phase1 == "one-step":
            for name in ("phase1", "short_answer_max_words", "step1_replay"):
                data.pop(name)
        return dict(sorted(data.items()))


# ------------------------------------------------------------------------------ test set (seeds)


# ------------------------------------------------------------------------------------ helpers

# A knowledge leaf whose every row repeats another leaf's keeps this many of them (first chunk first):
# enough for phase 1 to teach it and for the replay to draw from.
DUPLICATES_KEPT = 10
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


@dataclass(frozen=True)
class LeafIndex:
    """What the mixer reads of a leaf without decoding its JSON lines. Per training sample the hashes
    of its question (`q`) and of its user turn (`u`); the hashes of the test questions (`test`); the
    samples' and the test rows' MinHash signatures, concatenated (`mh`, `tmh`: mix/xdedup.py); for
    knowledge the distinct chunks, the replay's distractors (`chunks`, None for a skill). The store
    keeps it as JSON in its file header (`to_json`: the names above)."""

    q: tuple[str, ...]
    u: tuple[str, ...]
    test: tuple[str, ...]
    mh: str
    tmh: str
    chunks: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"q": list(self.q), "u": list(self.u), "test": list(self.test), "mh": self.mh,
                               "tmh": self.tmh}
        if self.chunks is not None:
            out["chunks"] = list(self.chunks)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeafIndex | None:
        """None for an index written by another store format (no question hashes): regenerate the leaf.
        Signatures missing (stored before there were any) read as none: nothing to compare."""
        q, u = data.get("q"), data.get("u")
        if not isinstance(q, list) or not isinstance(u, list):
            return None
        chunks = data.get("chunks")
        return cls(tuple(q), tuple(u), tuple(data.get("test") or ()), str(data.get("mh") or ""),
                   str(data.get("tmh") or ""), tuple(chunks) if isinstance(chunks, list) else None)


@dataclass
class PreparedLeaf:
    """A leaf's data in the form the store keeps and the mixer reads: path-free samples (knowledge
    ones already in phase-1 form) plus their index, so mixing needs no JSON decoding."""

    samples: list[dict[str, Any]]
    test: list[dict[str, Any]]
    index: LeafIndex


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
    index = LeafIndex(tuple(q_hashes), tuple(u_hashes), tuple(sorted(set(t_hashes))),
                      "".join(signature(dedup_text(kind, s)) for s in out),
                      "".join(signature(dedup_text(kind, t)) for t in tests),
                      tuple(chunks) if kind == "knowledge" else None)
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
    index: LeafIndex
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
    steps: dict[str, bytes] | None = None  # --phase1 two-step: {step file: its lines}
    step_counts: dict[str, int] = field(default_factory=dict)  # short, long, foundational, step1_replay
    samples: dict[str, int] = field(default_factory=lambda: {PHASE1: 0, PHASE2: 0, TEST: 0, VALIDATION: 0})
    # per leaf path: {"samples": stored, "train": in the sets, "test": n, "replay": n, "overlap": n,
    # "duplicate": n (near-duplicates of another leaf's sample or of any seed)}, plus "validation": n
    # for a leaf with validation rows, and "duplicate_kept": n for a knowledge leaf whose every row was
    # a near-duplicate (n of them kept anyway: see dedup_warnings)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    replay_data: int = 0  # rows from --replay-data

    def by_file(self) -> dict[str, list[bytes | memoryview]]:
        steps: dict[str, list[bytes | memoryview]] = {name: [lines] for name, lines in (self.steps or {}).items()}
        return {PHASE1: self.phase1, PHASE2: self.phase2, TEST: self.test, VALIDATION: self.validation, **steps}


def build_sets(leaves: Sequence[MixLeaf], settings: MixSettings) -> MixedSets:
    """Mix the sets. The common case copies each leaf's stored lines in one piece, replacing the path
    placeholder and adding the system turn; only a leaf with train/test overlaps or duplicates and the
    few replayed samples are split/decoded."""
    sets = MixedSets()
    ordered = sorted(leaves, key=lambda leaf: leaf.path)
    # Test first: every training sample whose question (or whole user turn) is a test question's, or
    # a near-duplicate of any leaf's seed, is left out below, so no sample is in both train and test.
    test_hashes, stamped, lines_in_test = _mix_test(ordered, sets, settings.system_prompt)
    # Seeds (and validation rows) first, remembered and never dropped; then every leaf's samples.
    groups = [(stored_signatures(leaf.index.tmh, n), False) for leaf, n in zip(ordered, lines_in_test)]
    groups += [(stored_signatures(leaf.index.mh, len(leaf.index.q)), True) for leaf in ordered]
    duplicates = find_duplicates(groups, settings.dedup_threshold, lambda g, i: text_at(ordered, g, i))
    duplicates = duplicates[len(ordered):]
    # Kept knowledge samples, for the replay: (leaf, its kept line numbers), in order.
    knowledge: list[tuple[MixLeaf, list[int]]] = []
    by_kind: dict[str, list[bytes | memoryview]] = {"knowledge": [], "foundational_skills": []}  # for two-step
    for leaf, dups in zip(ordered, duplicates):
        kept = _mix_leaf(leaf, dups, test_hashes, stamped[leaf.path], sets, settings)
        by_kind.get(leaf.kind, []).append((sets.phase1 if leaf.kind == "knowledge" else sets.phase2)[-1])
        if leaf.kind == "knowledge":
            knowledge.append((leaf, kept))
    _mix_replay(knowledge, sets, settings)
    if settings.phase1 == "two-step":
        sets.steps, sets.step_counts = split_steps(by_kind["knowledge"], by_kind["foundational_skills"], settings)
        sets.samples.update({name: lines.count(b"\n") for name, lines in sets.steps.items()})
    return sets


def _mix_test(ordered: Sequence[MixLeaf], sets: MixedSets,
              system: str) -> tuple[set[str], dict[str, memoryview], list[int]]:
    """Each leaf's test lines into the test set, its validation lines into the validation set; returns
    the test questions' hashes, each leaf's stamped training lines and its test line count."""
    test_hashes: set[str] = set()
    stamped: dict[str, memoryview] = {}
    lines_in_test: list[int] = []
    for leaf in ordered:
        train, test, n_test = leaf.stamped()
        stamped[leaf.path] = train
        lines_in_test.append(n_test)
        n_val = 0
        if _VALIDATION_MARK in bytes(test):  # a leaf's few test lines: the copy is cheap
            lines = bytes(test).split(b"\n")[:-1]
            held = [line + b"\n" for line in lines if _VALIDATION_MARK in line]
            n_val = len(held)
            sets.validation.append(rp.with_system(b"".join(held), system))
            test = b"".join(line + b"\n" for line in lines if _VALIDATION_MARK not in line)  # type: ignore[assignment]
            n_test -= n_val
        sets.test.append(rp.with_system(test, system))
        sets.samples[TEST] += n_test
        sets.samples[VALIDATION] += n_val
        sets.counts[leaf.path] = {"samples": len(leaf.index.q), "train": 0, "test": n_test, "replay": 0,
                                  "overlap": 0, "duplicate": 0, **({"validation": n_val} if n_val else {})}
        test_hashes.update(leaf.index.test)
    return test_hashes, stamped, lines_in_test


def _mix_leaf(leaf: MixLeaf, dups: set[int], test_hashes: set[str], stamped: memoryview, sets: MixedSets,
              settings: MixSettings) -> list[int]:
    """One leaf's training rows, less the test overlaps and the near-duplicates, into its phase's set;
    returns the line numbers of its samples kept (a knowledge leaf's replay draws from them)."""
    system = settings.system_prompt
    q, u = leaf.index.q, leaf.index.u
    n = len(q)
    c = sets.counts[leaf.path]
    target, name = (sets.phase1, PHASE1) if leaf.kind == "knowledge" else (sets.phase2, PHASE2)
    kept = [i for i in range(n) if q[i] not in test_hashes and u[i] not in test_hashes]
    c["overlap"] = n - len(kept)
    unique = [i for i in kept if i not in dups]
    if leaf.kind == "knowledge" and kept and not unique:
        # Every row repeats another leaf's: dropping them all would take the leaf out of phase 1
        # and out of the replay the floor promises every knowledge leaf. Its first rows in the
        # store's order (the pipeline's: first chunk first) stay, and the run summary says so.
        unique = kept[:DUPLICATES_KEPT]
        c["duplicate_kept"] = len(unique)
    kept = unique
    c["duplicate"] = n - c["overlap"] - len(kept)
    if leaf.kind == "knowledge":
        kept, rows, held = knowledge_rows(leaf.path, bytes(stamped), kept, settings)
        target.append(rp.with_system(b"".join(rows), system))
        if held:
            sets.test.append(rp.with_system(b"".join(held), system))
            sets.samples[TEST] += len(held)
            c["test"] += len(held)
        c["held_out"] = len(held)
        c["rows"] = len(rows)  # phase-1 rows made from the kept samples (open, closed book, documents)
        sets.samples[name] += len(rows)
    elif len(kept) == n:
        target.append(rp.with_system(stamped, system))
    else:
        lines = bytes(stamped).split(b"\n")
        target.append(rp.with_system(b"".join(lines[i] + b"\n" for i in kept), system))
    c["train"] = len(kept)
    if leaf.kind != "knowledge":
        sets.samples[name] += len(kept)
    return kept


def _mix_replay(knowledge: list[tuple[MixLeaf, list[int]]], sets: MixedSets, settings: MixSettings) -> None:
    """Phase 2's replay: the replay-data file's rows, then a share of every knowledge leaf's kept samples."""
    if settings.replay_data:
        extra = rp.read_replay_data(Path(settings.replay_data), settings.system_prompt)
        sets.phase2.append(b"".join(dumps_line(r) + b"\n" for r in extra))
        sets.samples[PHASE2] += len(extra)
        sets.replay_data = len(extra)
    counts = rp.replay_counts([len(kept) for _, kept in knowledge], sets.samples[PHASE2], settings.replay_ratio,
                              settings.replay_min_per_leaf)
    for (leaf, kept), n in zip(knowledge, counts):
        if n:
            lines = rp.draw_replay(leaf.path, leaf.lines(), list(leaf.index.chunks or ()), kept, n, settings,
                                   dumps_line)
            sets.counts[leaf.path]["replay"] = n
            sets.phase2.append(b"".join(lines))
            sets.samples[PHASE2] += len(lines)


def knowledge_rows(path: str, stamped: bytes, kept: list[int],
                   settings: MixSettings) -> tuple[list[int], list[bytes], list[bytes]]:
    """One knowledge leaf's phase-1 rows and held-out test rows, from its stored lines (path stamped).

    Returns (the line numbers still trained: the replay draws from these, the phase-1 lines, the
    held-out test lines). The held-out wording of each fact (mix/held_out.py) leaves every training
    set; a trained wording whose question is the held-out question's is left out as well. Each trained
    wording gives `open_book_rows` copies of its stored (open-book, unmasked) line and
    `closed_book_rows` closed-book rows; each distinct chunk `document_rows` document rows, in the
    order the chunks first appear. Lines without a system turn (the caller adds it)."""
    lines = stamped.split(b"\n")
    samples = {i: json.loads(lines[i]) for i in kept}
    held_rows: list[bytes] = []
    if settings.hold_out:
        order = list(kept)
        held = {order[j] for j in choose_held_out([samples[i] for i in order], path, settings.seed)}
        asked = {text_hash(question_of(samples[i])) for i in held}
        held_rows = [dumps_line(closed_book_row(samples[i], source="held_out")) + b"\n" for i in sorted(held)]
        kept = [i for i in kept if i not in held and text_hash(question_of(samples[i])) not in asked]
    out: list[bytes] = []
    chunks: dict[str, dict[str, Any]] = {}
    for i in kept:
        s = samples[i]
        out += [lines[i] + b"\n"] * settings.open_book_rows
        out += [dumps_line(closed_book_row(s)) + b"\n"] * settings.closed_book_rows
        c = chunk_of(s)
        if c:
            chunks.setdefault(c, s["metadata"])
    for c, meta in chunks.items():
        out += [dumps_line(document_row(c, meta)) + b"\n"] * settings.document_rows
    return kept, out, held_rows


def dedup_warnings(counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One line per knowledge leaf the taxonomy-wide dedup would have emptied (its rows kept anyway).
    `counts`: per leaf path its set counts (MixedSets.counts, a manifest LeafEntry's `counts`)."""
    return [f"warning   {quote_path(path)}: every row is a near-duplicate of another leaf's or of a seed; "
            f"kept its first {c['duplicate_kept']} so the leaf stays in phase 1 and in the replay"
            for path, c in sorted(counts.items()) if c.get("duplicate_kept")]


# ------------------------------------------------------------------------------------- writing


def encode_jsonl(rows: Sequence[bytes]) -> bytes:
    return b"".join(r + b"\n" for r in rows)


def write_sets(output: Path, sets: MixedSets) -> dict[str, SetFile]:
    """Write the set files atomically; returns each file's record for the manifest."""
    info: dict[str, SetFile] = {}
    files = sets.by_file()
    for name in STEP_FILES:
        if name not in files:  # a one-step run: step sets of an earlier two-step run would be read as current
            (output / name).unlink(missing_ok=True)
    for name, chunks in files.items():
        if name == VALIDATION and not sets.samples[VALIDATION]:
            # No held-out rows: no file (a stale one from an earlier run would be read as current).
            (output / name).unlink(missing_ok=True)
            continue
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        atomic_write_chunks(output / name, chunks)
        st = (output / name).stat()
        info[name] = SetFile(sets.samples[name], st.st_size, digest.hexdigest(), st.st_mtime_ns)
    return info


def sets_fingerprint(leaves: Sequence[tuple[str, str, str]], settings: MixSettings) -> str:
    """What the sets are a function of: (path, kind, key) of every current leaf, the mix settings and
    the content of the replay-data file."""
    payload = {"v": MIX_VERSION, "leaves": sorted(leaves), "mix": settings.as_dict(),
               "replay_data": rp.file_digest(settings.replay_data)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sets_intact(output: Path, sets: Mapping[str, SetFile], *, full: bool = False) -> bool:
    """True when every set file a manifest recorded (`sets`) is the one it recorded: same size and
    mtime (a rewrite changes them), or with `full` the same sha256."""
    if not set(SET_FILES) <= set(sets) <= {*SET_FILES, VALIDATION, *STEP_FILES}:
        return False
    if any(name not in sets and (output / name).exists() for name in (VALIDATION, *STEP_FILES)):
        return False
    for name, meta in sets.items():
        path = output / name
        try:
            st = path.stat()
            if st.st_size != meta.bytes:
                return False
            if (full or st.st_mtime_ns != meta.mtime_ns) and hashlib.sha256(
                path.read_bytes()
            ).hexdigest() != meta.sha256:
                return False
        except OSError:
            return False
    return True
