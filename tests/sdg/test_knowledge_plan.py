"""pipelines/knowledge_plan.py: every chunk first, pairs per chunk following its facts, then wordings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labtax.sdg.pipelines.knowledge_plan import facts_per_chunk, plan_knowledge
from labtax.sdg.settings import GenerationSettings


def test_pairs_per_chunk_follow_its_facts() -> None:
    s = GenerationSettings(qa_per_request=6, wordings_per_fact=2)
    kp = plan_knowledge([1, 7, 3], seeds=5, settings=s)
    asked: dict[int, int] = {}
    for a in kp.asks:
        asked[a.chunks[0]] = asked.get(a.chunks[0], 0) + a.facts
        assert a.wordings == 2 and a.pairs <= 6
    assert asked == {0: 1, 1: 7, 2: 3}
    assert kp.facts == kp.facts_asked == 11 and kp.chunks_asked == 3 and not kp.bound
    # Round 0 shows every chunk before chunk 1 (7 facts, 3 a request) is asked again.
    assert [a.chunks[0] for a in kp.asks] == [0, 1, 2, 1, 1]


def test_a_limit_buys_every_fact_in_two_wordings_before_a_third() -> None:
    full = plan_knowledge([3, 3, 3], 5, GenerationSettings(qa_per_request=6, wordings_per_fact=3))
    assert full.requests == 6 and full.wordings == 3
    two = plan_knowledge([3, 3, 3], 5, GenerationSettings(qa_per_request=6, wordings_per_fact=3,
                                                          max_requests_per_leaf=3))
    assert two.requests == 3 and two.wordings == 2 and two.facts_asked == 9 and two.bound


def test_a_limit_too_small_for_two_wordings_asks_fewer_facts_not_one_wording() -> None:
    # One wording of a fact is trained but never tested (the mixer holds one wording out): at the
    # floor of two, the rounds are cut instead, every chunk still asked.
    cut = plan_knowledge([4, 4, 4], 5, GenerationSettings(qa_per_request=4, wordings_per_fact=2,
                                                          max_requests_per_leaf=3))
    assert cut.requests == 3 and cut.wordings == 2 and cut.facts_asked == 6 and cut.chunks_asked == 3 and cut.bound
    one = plan_knowledge([4, 4, 4], 5, GenerationSettings(qa_per_request=4, wordings_per_fact=1,
                                                          max_requests_per_leaf=3))
    assert one.wordings == 1 and one.facts_asked == 12


def test_the_budget_in_tokens_is_a_request_limit() -> None:
    s = GenerationSettings(qa_per_request=4, wordings_per_fact=2, max_tokens=512, budget_tokens=1536)
    assert s.request_limit() == 3
    assert plan_knowledge([4, 4, 4], 5, s).requests == 3


def test_fewer_requests_than_chunks_still_show_every_chunk() -> None:
    # The demo's size: two requests for a leaf of seven chunks.
    kp = plan_knowledge([3, 2, 5, 1, 4, 2, 6], 5, GenerationSettings(max_requests_per_leaf=2))
    assert kp.requests == 2 and kp.chunks_asked == 7
    assert sorted(c for a in kp.asks for c in a.chunks) == list(range(7))


def test_a_request_asks_for_no_more_pairs_than_its_max_tokens_hold() -> None:
    # The demo's 160-token replies hold 4 pairs, not the default 6: two facts in two wordings a request.
    kp = plan_knowledge([4], 5, GenerationSettings(max_tokens=160, wordings_per_fact=2))
    assert [a.pairs for a in kp.asks] == [4, 4]
    assert plan_knowledge([4], 5, GenerationSettings(max_tokens=16)).asks[0].pairs == 2  # one fact, its wordings


def test_facts_per_chunk_counts_names_numbers_and_dates() -> None:
    assert facts_per_chunk(["The hive was founded on 2 March 1899 by Marie Vell.", "bees make honey"]) == (2, 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=40), st.integers(1, 60), st.integers(1, 8),
       st.integers(1, 3))
def test_every_chunk_is_reached_at_any_limit(facts: list[int], limit: int, per_request: int, wordings: int) -> None:
    s = GenerationSettings(max_requests_per_leaf=limit, qa_per_request=per_request, wordings_per_fact=wordings)
    kp = plan_knowledge(facts, 5, s)
    assert 1 <= kp.requests <= limit
    assert kp.chunks_asked == len(facts)
    assert kp.facts_asked <= kp.facts
    if kp.facts_asked < kp.facts:
        assert kp.wordings == min(2, wordings)  # a cut plan gives up wordings down to two, then facts
    if kp.requests == kp.wanted:
        assert kp.wordings == wordings
