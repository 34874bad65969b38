"""Phase 1's rows that teach recall (issue 20): per trained wording an open-book and a closed-book row,
per chunk the passage itself, and one wording of each fact held out as a closed-book test row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labtax.data import PHASE1
from labtax.data.sample import chunk_of, question_of
from labtax.mix.mix import MixLeaf, MixSettings, build_sets

PATH = "knowledge/history/isle/qna.yaml"


def wording(fact: int, n: int, chunk: int = 0) -> dict[str, Any]:
    """The n-th wording of a fact, as the knowledge pipeline stores it (`fact` shared by its wordings)."""
    q = f"Wording {n}: when was landmark {fact} built?"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"In {1800 + fact}."}],
            "metadata": {"question": q, "context": f"Passage {chunk}: the landmarks of the isle and their dates.",
                         "document": "isle.md", "chunk": chunk, "fact": f"isle.md#{chunk}/{fact}"},
            "unmask": False}


def rows(chunks: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in b"".join(bytes(c) for c in chunks).split(b"\n")[:-1]]


def leaf(samples: list[dict[str, Any]]) -> MixLeaf:
    return MixLeaf.from_samples(PATH, "knowledge", "k", samples)


def facts(per_fact: int = 3, n_facts: int = 4) -> list[dict[str, Any]]:
    return [wording(f, n, chunk=f % 2) for f in range(n_facts) for n in range(per_fact)]


def test_one_wording_per_fact_is_held_out_closed_book_and_never_trained() -> None:
    sets = build_sets([leaf(facts())], MixSettings(system_prompt=""))
    test, train = rows(sets.test), rows(sets.phase1) + rows(sets.phase2)
    held = [t for t in test if t["metadata"].get("source") == "held_out"]
    assert sorted(t["metadata"]["fact"] for t in held) == sorted(f"isle.md#{f % 2}/{f}" for f in range(4))
    for t in held:
        assert t["metadata"]["closed_book"] is True and t["metadata"]["leaf"] == PATH
        assert [m["role"] for m in t["messages"]] == ["user", "assistant"]
        assert t["messages"][0]["content"].startswith("Wording ")  # the question alone: no passage
        assert "Passage" not in t["messages"][0]["content"] and not chunk_of(t)
    asked = {question_of(t) for t in held}
    assert not any(question_of(s) in asked for s in train if "messages" in s)
    # Each fact is still trained, from its two other wordings.
    trained_facts = {s["metadata"].get("fact") for s in train}
    assert {t["metadata"]["fact"] for t in held} <= trained_facts
    c = sets.counts[PATH]
    assert c["held_out"] == 4 and c["train"] == 8 and c["test"] == 4


def test_each_trained_wording_gives_open_and_closed_book_rows_and_each_chunk_a_document_row() -> None:
    sets = build_sets([leaf(facts())], MixSettings(system_prompt="", replay_min_per_leaf=0))
    p1 = rows(sets.phase1)
    open_book = [s for s in p1 if chunk_of(s) and s["metadata"].get("source") != "document"]
    closed = [s for s in p1 if s["metadata"].get("closed_book")]
    docs = [s for s in p1 if s["metadata"].get("source") == "document"]
    assert len(open_book) == len(closed) == 8 and len(docs) == 2 and len(p1) == sets.samples[PHASE1] == 18
    assert all(s["unmask"] is True and s["messages"][0]["content"].startswith("Passage") for s in open_book)
    for s in closed:
        assert s["unmask"] is False and s["messages"][0]["content"] == question_of(s)
        assert s["messages"][0]["content"].startswith("Wording ")
    assert sorted(d["messages"][0]["content"] for d in docs) == sorted({chunk_of(s) for s in open_book})
    assert all(d["unmask"] is True and [m["role"] for m in d["messages"]] == ["user"] for d in docs)
    assert sets.counts[PATH]["rows"] == 18


def test_the_balance_is_a_setting() -> None:
    def count(**kw: Any) -> int:
        return len(rows(build_sets([leaf(facts())], MixSettings(system_prompt="", **kw)).phase1))

    assert count(open_book_rows=0, document_rows=0) == 8  # closed book alone (the recipe)
    assert count(closed_book_rows=2, document_rows=3) == 8 + 16 + 6
    assert count(hold_out=False, closed_book_rows=0, document_rows=0) == 12  # every wording, open book
    with pytest.raises(ValueError):
        MixSettings(closed_book_rows=-1)


def test_a_fact_with_one_wording_is_trained_not_held_out_and_data_without_facts_holds_nothing_out() -> None:
    single = [wording(0, 0), wording(1, 0), wording(1, 1)]
    sets = build_sets([leaf(single)], MixSettings(system_prompt=""))
    held = [t["metadata"]["fact"] for t in rows(sets.test)]
    assert held == ["isle.md#0/1"]
    assert "isle.md#0/0" in {s["metadata"].get("fact") for s in rows(sets.phase1)}
    bare = [wording(f, n) for f in range(2) for n in range(2)]
    for s in bare:
        del s["metadata"]["fact"]
    assert rows(build_sets([leaf(bare)], MixSettings(system_prompt="")).test) == []


def test_the_held_out_choice_is_stable_and_per_fact() -> None:
    def held(samples: list[dict[str, Any]], seed: int = 42) -> list[str]:
        return [question_of(t) for t in rows(build_sets([leaf(samples)], MixSettings(seed=seed)).test)]

    a = sorted(held(facts()))
    assert a == sorted(held(list(reversed(facts()))))  # input order does not matter
    # Adding a fact never moves another fact's held-out wording.
    assert set(a) <= set(held(facts(n_facts=5)))
    assert any(sorted(held(facts(), seed)) != a for seed in range(5))


def test_the_replay_never_draws_a_held_out_wording() -> None:
    skill = [{"messages": [{"role": "user", "content": f"Write poem {i}"}, {"role": "assistant", "content": "ok"}],
              "metadata": {"question": f"Write poem {i}"}, "unmask": False} for i in range(20)]
    sets = build_sets([leaf(facts()), MixLeaf.from_samples("compositional_skills/p/qna.yaml",
                                                           "compositional_skills", "s", skill)],
                      MixSettings(replay_ratio=5.0, replay_min_per_leaf=100))
    held = {question_of(t) for t in rows(sets.test)}
    replayed = [s for s in rows(sets.phase2) if s["metadata"].get("replay")]
    assert replayed and not any(question_of(s).strip() in held for s in replayed)
