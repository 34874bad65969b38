"""The recipe's mixing: replay floors reaching every knowledge leaf, same-leaf distractors, unmasked
copies, the fixed system turn, --replay-data, and near-duplicate removal across the taxonomy."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from lab_taxonomy import add_knowledge, add_skill, read_jsonl, run_cli, teacher_args

from labtax.data import PHASE1, PHASE2, TEST, VALIDATION
from labtax.data.sample import chunk_of, question_of, user_text
from labtax.errors import UsageError
from labtax.mix.knowledge_replay import DEFAULT_SYSTEM_PROMPT, replay_counts
from labtax.mix.mix import MixLeaf, MixSettings, build_sets, sets_fingerprint

WORDS = ["amber", "harbor", "lantern", "thistle", "meadow", "glacier", "falcon", "willow", "quartz", "ember", "canyon", "orchid", "tundra", "beacon", "cinder", "delta", "fjord", "grove", "haven", "island", "jungle", "kestrel", "lotus", "mesa", "nectar", "oasis", "prairie", "quarry", "ridge", "savanna"]


def _words(seed: str, n: int) -> str:
    h = hashlib.sha256(seed.encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in h[:n])


def skill(leaf: int, i: int) -> dict[str, Any]:
    q = f"Describe the {_words(f's{leaf}-{i}', 6)} in a short paragraph?"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"It is {_words(q, 5)}."}],
            "metadata": {"question": q}, "unmask": False}


def knowledge(leaf: int, i: int, chunks: int = 6) -> dict[str, Any]:
    chunk = f"Chunk {i % chunks} of document {leaf}: {_words(f'c{leaf}-{i % chunks}', 12)}."
    q = f"What does the document say about {_words(f'k{leaf}-{i}', 5)}?"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": _words(q, 6)}],
            "metadata": {"question": q, "context": chunk, "chunk": i % chunks}, "unmask": False}


def taxonomy(n_knowledge: int = 2, n_skill: int = 3, per_skill: int = 34, per_knowledge: int = 25) -> list[MixLeaf]:
    out = [MixLeaf.from_samples(f"compositional_skills/s{j}/qna.yaml", "compositional_skills", f"s{j}",
                                [skill(j, i) for i in range(per_skill)]) for j in range(n_skill)]
    out += [MixLeaf.from_samples(f"knowledge/k{j}/qna.yaml", "knowledge", f"k{j}",
                                 [knowledge(j, i) for i in range(per_knowledge)]) for j in range(n_knowledge)]
    return out


def rows(chunks: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in b"".join(bytes(c) for c in chunks).split(b"\n")[:-1]]


def test_phase2_replays_every_knowledge_leaf() -> None:
    # 102 skill samples, two knowledge leaves of 25: 3% alone would be 4 rows, perhaps of one leaf.
    sets = build_sets(taxonomy(), MixSettings(replay_min_per_leaf=10))
    replay = [s for s in rows(sets.phase2) if s["metadata"].get("replay") and "replay_copy" not in s["metadata"]]
    by_leaf = {s["metadata"]["leaf"] for s in replay}
    assert by_leaf == {"knowledge/k0/qna.yaml", "knowledge/k1/qna.yaml"}
    assert len(replay) == 20 > math.ceil(0.03 * 102)  # 10 per leaf: the per-leaf floor
    assert all(sets.counts[f"knowledge/k{j}/qna.yaml"]["replay"] == 10 for j in range(2))
    # The default floor is one row a leaf (docs/train.md, *Keeping the skills*): the 3 % ratio's rows
    # (of the skill samples left after the test split), shared by size, every leaf in them.
    default = build_sets(taxonomy(), MixSettings())
    counts = [default.counts[f"knowledge/k{j}/qna.yaml"]["replay"] for j in range(2)]
    skills = sum(1 for s in rows(default.phase2) if not s["metadata"].get("replay"))
    assert min(counts) >= 1 and sum(counts) == max(2, math.ceil(0.03 * skills)) < 20
    # The ratio is a floor too: 50% of 102 skills is 51 rows, shared by size.
    big = build_sets(taxonomy(), MixSettings(replay_ratio=0.5, replay_unmasked_copy=False))
    assert sum(1 for s in rows(big.phase2) if s["metadata"].get("replay") and "replay_copy" not in s["metadata"]) \
        == 50  # capped at what exists


def test_replay_counts_share_by_size_with_floors() -> None:
    assert replay_counts([100, 5, 0], 1000, 0.03, 10) == [25, 5, 0]
    assert replay_counts([100, 100], 10_000, 0.03, 10) == [100, 100]
    assert sum(replay_counts([7, 13, 40], 1000, 0.03, 2)) == 30
    assert replay_counts([50], 0, 0.03, 10) == [0]


def test_distractors_come_from_the_same_leaf_and_each_replay_has_an_unmasked_copy() -> None:
    leaves = taxonomy()
    own = {}
    for s in rows(build_sets(leaves, MixSettings()).phase1):
        if chunk_of(s) and s["metadata"].get("source") != "document":  # the open-book rows
            own[question_of(s)] = (s["metadata"]["leaf"], chunk_of(s))
    sets = build_sets(leaves, MixSettings(replay_context_prob=0.5, distractors=3))
    phase2 = rows(sets.phase2)
    chunks_of = {leaf: {c for lf, c in own.values() if lf == leaf} for leaf, _ in own.values()}
    replays = [i for i, s in enumerate(phase2) if s["metadata"].get("replay") and "replay_copy" not in s["metadata"]]
    assert replays
    for i in replays:
        s = phase2[i]
        leaf = s["metadata"]["leaf"]
        docs = [d.split("\n\n")[0] for d in user_text(s).split("Document:\n")[1:]]
        assert len(docs) in (3, 4) and all(d in chunks_of[leaf] for d in docs)
        assert s["unmask"] is False
        closed, copy = phase2[i + 1], phase2[i + 2]
        assert closed["metadata"]["replay_copy"] == "closed_book" and closed["unmask"] is False
        assert user_text(closed) == question_of(s).strip() and closed["messages"][-1] == s["messages"][-1]
        assert copy["metadata"]["replay_copy"] == "unmasked" and copy["unmask"] is True
        assert question_of(copy) == question_of(s) and chunk_of(copy) == own[question_of(s)][1]


def test_every_sample_begins_with_the_system_turn() -> None:
    leaves = taxonomy()
    leaves.append(MixLeaf.from_samples("compositional_skills/t/qna.yaml", "compositional_skills", "t", [],
                                       [skill(9, 0)]))
    sets = build_sets(leaves, MixSettings())
    for name, chunks in sets.by_file().items():
        got = rows(chunks)
        assert got or name == VALIDATION, name
        for s in got:
            assert s["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, name
            # A document row (phase 1 reads the passage itself) has no reply: loss on its text.
            turns = ["user"] if s["metadata"].get("source") == "document" else ["user", "assistant"]
            assert [m["role"] for m in s["messages"][1:]] == turns
    plain = build_sets(leaves, MixSettings(system_prompt=""))
    assert all(s["messages"][0]["role"] == "user" for s in rows(plain.phase2))


def test_replay_data_joins_phase_two(tmp_path: Path) -> None:
    data = tmp_path / "base.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "Hi there"},
                                 {"role": "assistant", "content": "Hello."}]}) + "\n\n"
        + json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})
        + "\n", encoding="utf-8")
    settings = MixSettings(replay_data=str(data))
    sets = build_sets(taxonomy(), settings)
    extra = [s for s in rows(sets.phase2) if s["metadata"]["kind"] == "replay_data"]
    assert [user_text(s) for s in extra] == ["Hi there", "2+2?"]
    assert all(s["messages"][0]["content"] == DEFAULT_SYSTEM_PROMPT and s["unmask"] is False for s in extra)
    assert sets.replay_data == 2 and sets.samples[PHASE2] == len(rows(sets.phase2))
    before = sets_fingerprint([("a", "knowledge", "k")], settings)
    data.write_text(data.read_text() + json.dumps({"messages": [{"role": "user", "content": "x"},
                                                               {"role": "assistant", "content": "y"}]}) + "\n")
    assert sets_fingerprint([("a", "knowledge", "k")], settings) != before
    data.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(UsageError, match="base.jsonl:1"):
        build_sets(taxonomy(), settings)


def test_near_duplicates_across_leaves_and_of_seeds_are_left_out() -> None:
    seed = {"messages": [{"role": "user", "content": "Write a four line poem about the river at dawn."},
                         {"role": "assistant", "content": "..."}], "metadata": {}, "unmask": False}
    a = [skill(0, i) for i in range(5)]
    # Leaf b: a paraphrase of leaf a's seed, a copy of a's first sample in other words order, and one new.
    b = [{"messages": [{"role": "user", "content": "Compose a four-line poem about the river at dawn"},
                       {"role": "assistant", "content": "Rivers."}], "metadata": {}, "unmask": False},
         {"messages": [{"role": "user", "content": user_text(a[0]).replace("Describe the", "In a short paragraph, describe the")},
                       {"role": "assistant", "content": "Same."}], "metadata": {}, "unmask": False},
         skill(1, 0)]
    leaves = [MixLeaf.from_samples("compositional_skills/a/qna.yaml", "compositional_skills", "a", a, [seed]),
              MixLeaf.from_samples("compositional_skills/b/qna.yaml", "compositional_skills", "b", b)]
    sets = build_sets(leaves, MixSettings(replay_min_per_leaf=0))
    kept = [user_text(s) for s in rows(sets.phase2)]
    assert len(kept) == 6 and user_text(skill(1, 0)) in kept
    assert not any("river" in k for k in kept)
    assert sets.counts["compositional_skills/b/qna.yaml"]["duplicate"] == 2
    assert sets.counts["compositional_skills/a/qna.yaml"]["duplicate"] == 0
    off = build_sets(leaves, MixSettings(replay_min_per_leaf=0, dedup_threshold=1.0))
    assert len(rows(off.phase2)) == 8
    assert len(rows(sets.test)) == 1 == sets.samples[TEST] and sets.samples[PHASE1] == 0


def test_two_knowledge_and_three_skill_leaves_end_to_end(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("haiku", "limerick", "sonnet"):
        add_skill(git_repo, f"compositional_skills/writing/{name}")
    add_knowledge(git_repo, "knowledge/astro/moon")
    add_knowledge(git_repo, "knowledge/astro/mars")
    git_repo.commit("five leaves")
    out = tmp_path / "out"
    code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output",
                          str(out), "--head", "HEAD", *teacher_args(openai_server, samples=4)])
    assert code == 0, text
    phase2 = read_jsonl(out / PHASE2)
    replayed = {s["metadata"]["leaf"] for s in phase2 if s["metadata"].get("replay")}
    assert replayed == {"knowledge/astro/moon/qna.yaml", "knowledge/astro/mars/qna.yaml"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mix"]["replay_min_per_leaf"] == 1 and manifest["mix"]["system_prompt"]
    for e in manifest["leaves"]:
        gen = e["generation"]
        assert gen["funnel"]["kept"] == gen["kept"] and gen["quota"] >= gen["kept"]
        assert "duplicate" in e["counts"]
    assert "funnel    knowledge/astro/mars/qna.yaml: asked" in text


def test_dedup_with_nothing_to_compare() -> None:
    from labtax.mix.xdedup import find_duplicates, signature

    assert find_duplicates([], 0.7, lambda g, i: "") == []
    one = signature("Write a poem about the sea")
    assert find_duplicates([(one, True)], 0.7, lambda g, i: "") == [set()]
    other = signature("Explain how glaciers carve valleys")
    assert find_duplicates([(one, False), (other, True)], 0.7, lambda g, i: "") == [set(), set()]
    assert find_duplicates([("0" * 192 * 2, True)], 0.7, lambda g, i: "") == [set()]


def test_the_funnel_line_keeps_pipeline_order_after_the_manifest_sorted_it() -> None:
    from labtax.data import LeafEntry
    from labtax.report.diff_generate import funnel_line

    stored = json.loads(json.dumps({"asked": 6, "parsed": 5, "deduplicated": 5, "judged": 2, "answered": 2,
                                    "scored": 2, "kept": 2}, sort_keys=True))  # as the manifest holds it
    line = funnel_line(LeafEntry.from_json({"path": "a/qna.yaml", "status": "generated",
                                            "generation": {"funnel": stored}, "counts": {"train": 2}}))
    assert line == ("funnel    a/qna.yaml: asked 6 -> parsed 5 -> deduplicated 5 -> judged 2 -> answered 2"
                    " -> scored 2 -> kept 2 -> in sets 2")


def test_dedup_never_empties_a_knowledge_leaf() -> None:
    from labtax.mix.mix import dedup_warnings

    # Leaf k1's generated rows all repeat k0's (the same document twice, say): the dedup would drop
    # every one of them, and the leaf would vanish from phase 1 and from the replay.
    k0 = [knowledge(0, i) for i in range(25)]
    leaves = taxonomy(n_knowledge=0) + [
        MixLeaf.from_samples("knowledge/k0/qna.yaml", "knowledge", "k0", k0),
        MixLeaf.from_samples("knowledge/k1/qna.yaml", "knowledge", "k1", [json.loads(json.dumps(s)) for s in k0])]
    sets = build_sets(leaves, MixSettings())
    k1 = sets.counts["knowledge/k1/qna.yaml"]
    assert k1["train"] == 10 == k1["duplicate_kept"] and k1["duplicate"] == 15  # mix.DUPLICATES_KEPT
    assert k1["replay"] > 0 and sets.counts["knowledge/k0/qna.yaml"]["train"] == 25
    assert {s["metadata"]["leaf"] for s in rows(sets.phase1)} == {"knowledge/k0/qna.yaml", "knowledge/k1/qna.yaml"}
    (line,) = dedup_warnings(sets.counts)
    assert line.startswith("warning   knowledge/k1/qna.yaml: every row is a near-duplicate") and "kept its first 10" in line
    # A skill leaf may still lose every row: the floor is the replay's, for knowledge.
    assert "duplicate_kept" not in sets.counts["compositional_skills/s0/qna.yaml"]
