"""Mixing the training sets and the test set from hand-made leaf data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from labtax.data import PHASE1, PHASE2, TEST
from labtax.data.sample import chunk_of, question_of
from labtax.mix.held_out import seed_test_samples
from labtax.mix.mix import (
    MixLeaf,
    MixSettings,
    build_sets,
    sets_fingerprint,
    sets_intact,
    write_sets,
)
from labtax.taxonomy.model import Leaf

KNOWLEDGE_YAML = """\
version: 3
created_by: alice
domain: astronomy
document_outline: Facts about the moon
seed_examples:
  - context: The moon orbits the earth every 27 days.
    questions_and_answers:
      - question: How long is the moon's orbit?
        answer: About 27 days.
      - question: What does the moon orbit?
        answer: The earth.
  - context: The moon has no atmosphere to speak of.
    questions_and_answers:
      - question: Does the moon have an atmosphere?
        answer: Hardly any.
document: {repo: https://example.com/docs, commit: abc123, patterns: ["*.md"]}
"""

SKILL_YAML = """\
version: 2
created_by: bob
task_description: Summarise a paragraph
seed_examples:
  - question: Summarise the text.
    answer: A summary.
    context: Some paragraph of text.
  - question: Write a title for the text.
    answer: A Title
"""


def skill_sample(leaf: int, i: int, question: str | None = None) -> dict[str, Any]:
    q = question or f"skill question {leaf}-{i}"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"answer {i}"}],
            "metadata": {"question": q}, "unmask": False}


def knowledge_sample(leaf: int, i: int) -> dict[str, Any]:
    chunk = f"chunk {leaf}-{i % 5} of the document"
    q = f"knowledge question {leaf}-{i}"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"fact {i}"}],
            "metadata": {"question": q, "context": chunk, "chunk": i % 5}, "unmask": False}


# The mixing of labtax before the recipe issue: replay only as a ratio, no system turn, no unmasked
# copies, no taxonomy-wide dedup, open-book knowledge rows only (what these tests were written for; the
# recipe's own tests follow, and tests/sdg/test_mix_recall.py tests the rows that teach recall).
PLAIN = {"replay_min_per_leaf": 0, "system_prompt": "", "replay_unmasked_copy": False, "dedup_threshold": 1.0,
         "closed_book_rows": 0, "document_rows": 0, "hold_out": False}


def leaves(n_skill: int = 4, n_knowledge: int = 3, per_leaf: int = 50) -> list[MixLeaf]:
    out = [MixLeaf.from_samples(f"compositional_skills/s{j}/qna.yaml", "compositional_skills", f"ks{j}",
                                [skill_sample(j, i) for i in range(per_leaf)]) for j in range(n_skill)]
    out += [MixLeaf.from_samples(f"knowledge/k{j}/qna.yaml", "knowledge", f"kk{j}",
                                 [knowledge_sample(j, i) for i in range(per_leaf)]) for j in range(n_knowledge)]
    return out


def rows(chunks: list[bytes]) -> list[dict[str, Any]]:
    """The samples of a set held as byte chunks of whole lines."""
    return [json.loads(line) for line in b"".join(bytes(c) for c in chunks).split(b"\n")[:-1]]


def test_phase1_is_all_knowledge_unmasked_with_chunk_in_user_turn() -> None:
    sets = build_sets(leaves(), MixSettings(**PLAIN))
    assert len(rows(sets.phase1)) == 150 == sets.samples[PHASE1]
    for s in rows(sets.phase1):
        assert s["unmask"] is True
        assert s["metadata"]["kind"] == "knowledge"
        user = s["messages"][0]["content"]
        assert user == f"{chunk_of(s)}\n\n{question_of(s)}"
        assert not {"question", "context", "answer"} & set(s["metadata"])  # not repeated in metadata


def test_phase2_is_all_skills_plus_replay_share() -> None:
    sets = build_sets(leaves(), MixSettings(**PLAIN))
    skills = [s for s in rows(sets.phase2) if not s["metadata"].get("replay")]
    replay = [s for s in rows(sets.phase2) if s["metadata"].get("replay")]
    assert len(skills) == 200
    assert len(replay) == math.ceil(0.03 * 200) == 6
    assert sum(c["replay"] for c in sets.counts.values()) == 6
    # Configurable; capped at all knowledge data.
    big = build_sets(leaves(), MixSettings(**PLAIN, replay_ratio=5.0))
    assert sum(1 for s in rows(big.phase2) if s["metadata"].get("replay")) == 150
    assert not any(s["metadata"].get("replay") for s in rows(build_sets(leaves(), MixSettings(**PLAIN, replay_ratio=0)).phase2))
    # No skills: no replay.
    assert build_sets(leaves(n_skill=0), MixSettings(**PLAIN)).phase2 == []


def test_replay_shows_own_chunk_among_distractors_part_of_the_time() -> None:
    # A replay's own chunk is the one its question has in phase 1.
    own = {question_of(s): chunk_of(s) for s in rows(build_sets(leaves(), MixSettings(**PLAIN)).phase1)}

    def replays(p: float) -> list[dict[str, Any]]:
        sets = build_sets(leaves(), MixSettings(**PLAIN, replay_ratio=1.0, replay_context_prob=p, distractors=3))
        return [s for s in rows(sets.phase2) if s["metadata"].get("replay")]

    for s in replays(1.0):
        user = s["messages"][0]["content"]
        assert user.count("Document:\n") == 4
        assert f"Document:\n{own[question_of(s)]}\n\n" in user
        assert user.endswith(question_of(s))
        assert s["unmask"] is False
    for s in replays(0.0):
        user = s["messages"][0]["content"]
        assert user.count("Document:\n") == 3
        assert own[question_of(s)] not in user
    mixed = replays(0.4)
    with_chunk = sum(s["metadata"]["replay_with_chunk"] for s in mixed)
    assert 0 < with_chunk < len(mixed)


def test_deterministic_for_a_seed_and_order_independent() -> None:
    a = build_sets(leaves(), MixSettings(**PLAIN, replay_ratio=0.2))
    b = build_sets(list(reversed(leaves())), MixSettings(**PLAIN, replay_ratio=0.2))
    c = build_sets(leaves(), MixSettings(**PLAIN, replay_ratio=0.2, seed=7))
    for name in ("phase1", "phase2", "test"):
        assert b"".join(map(bytes, getattr(a, name))) == b"".join(map(bytes, getattr(b, name)))
    assert b"".join(map(bytes, a.phase2)) != b"".join(map(bytes, c.phase2))


def leaf(text: str, path: str) -> Leaf:
    return Leaf(path=path, kind=path.split("/")[0], data=yaml.safe_load(text))  # type: ignore[arg-type]


def test_test_set_from_seeds() -> None:
    k = seed_test_samples(leaf(KNOWLEDGE_YAML, "knowledge/astro/moon/qna.yaml"))
    assert len(k) == 3
    assert k[0]["messages"] == [  # closed book: the question alone, its context kept aside
        {"role": "user", "content": "How long is the moon's orbit?"},
        {"role": "assistant", "content": "About 27 days."},
    ]
    assert k[0]["metadata"]["context"] == "The moon orbits the earth every 27 days."
    assert all(x["metadata"]["shown_to_teacher"] for x in k)
    assert k[0]["metadata"]["source"] == "seed"
    s = seed_test_samples(leaf(SKILL_YAML, "compositional_skills/sum/qna.yaml"))
    assert [x["messages"][0]["content"] for x in s] == [
        "Some paragraph of text.\n\nSummarise the text.", "Write a title for the text."]
    mixed = build_sets([MixLeaf.from_samples("compositional_skills/renamed/qna.yaml", "compositional_skills", "k",
                                             [], s)], MixSettings(**PLAIN))
    assert [t["metadata"]["leaf"] for t in rows(mixed.test)] == ["compositional_skills/renamed/qna.yaml"] * 2
    assert all(t["metadata"]["kind"] == "compositional_skills" for t in rows(mixed.test))


def test_no_sample_in_both_train_and_test() -> None:
    seeds = seed_test_samples(leaf(SKILL_YAML, "compositional_skills/sum/qna.yaml"))
    samples = [skill_sample(0, 0, "Write a title for the text."), skill_sample(0, 1, "  write a TITLE for the text. "),
               skill_sample(0, 2)]
    sets = build_sets([MixLeaf.from_samples("compositional_skills/sum/qna.yaml", "compositional_skills", "k",
                                            samples, seeds)], MixSettings(**PLAIN))
    assert [question_of(s) for s in rows(sets.phase2)] == ["skill question 0-2"]
    assert sets.counts["compositional_skills/sum/qna.yaml"] == {"samples": 3, "train": 1, "test": 2, "replay": 0,
                                                                "overlap": 2, "duplicate": 0}


def test_write_sets_atomic_and_checked(tmp_path: Path) -> None:
    sets = build_sets(leaves(), MixSettings(**PLAIN))
    info = write_sets(tmp_path, sets)
    assert info[PHASE1].samples == 150 and info[TEST].samples == 0
    assert sets_intact(tmp_path, info) and sets_intact(tmp_path, info, full=True)
    written = [json.loads(line) for line in (tmp_path / PHASE2).read_text().splitlines()]
    assert written == rows(sets.phase2)
    (tmp_path / PHASE2).write_bytes((tmp_path / PHASE2).read_bytes()[:-10])
    assert not sets_intact(tmp_path, info)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([PHASE1, PHASE2, TEST])


def test_fingerprint() -> None:
    base = sets_fingerprint([("a", "knowledge", "k1")], MixSettings(**PLAIN))
    assert base == sets_fingerprint([("a", "knowledge", "k1")], MixSettings(**PLAIN))
    assert base != sets_fingerprint([("b", "knowledge", "k1")], MixSettings(**PLAIN))
    assert base != sets_fingerprint([("a", "knowledge", "k1")], MixSettings(**PLAIN, seed=1))


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        MixSettings(replay_context_prob=2)


def test_stored_samples_are_path_free_and_stamped_on_mixing() -> None:
    leaf = MixLeaf.from_samples("knowledge/a/qna.yaml", "knowledge", "k", [knowledge_sample(0, 0)])
    assert b"knowledge/a" not in leaf.data
    moved = MixLeaf("knowledge/b/qna.yaml", leaf.kind, leaf.key, leaf.data, leaf.train_span, leaf.test_span,
                    leaf.index)
    (s,) = rows(build_sets([moved], MixSettings(**PLAIN)).phase1)
    assert s["metadata"]["leaf"] == "knowledge/b/qna.yaml"
    # A path needing JSON escapes is stamped correctly.
    odd = MixLeaf('knowledge/quo"te\\é/qna.yaml', leaf.kind, leaf.key, leaf.data, leaf.train_span,
                  leaf.test_span, leaf.index)
    (s,) = rows(build_sets([odd], MixSettings(**PLAIN)).phase1)
    assert s["metadata"]["leaf"] == 'knowledge/quo"te\\é/qna.yaml'
