"""How a knowledge leaf's Q&A requests are spread over its documents: every chunk first, then every
fact, then more wordings of each fact.

A chunk holds `count_facts(chunk)` key facts (numbers, dates, names; at least one: a chunk of prose
still teaches something). A request shows one chunk and asks for `facts` of its facts, each in
`wordings` differently worded question-answer pairs, at most `qa_per_request` pairs in all; a chunk
with more facts than one request holds gets more requests. So the pairs asked per chunk follow its
facts, not a flat quota.

The requests are ordered in rounds, round r holding every chunk's r-th request, so a plan cut short
still reaches every chunk. A request asks for at most `qa_per_request` pairs, and no more than
`max_tokens` holds at ~PAIR_TOKENS a pair. The limit (`--max-requests-per-leaf`, and what `--budget-tokens` buys)
is spent in this order:

  1. the full plan (every fact, `wordings_per_fact` wordings each) when it fits;
  2. else the most wordings per fact (down to two) for which every fact still fits;
  3. else two wordings, rounds cut at the limit (every chunk reached when the limit is at least the
     chunk count; the facts of later rounds not asked);
  4. with fewer requests than chunks, neighbouring chunks are shown together in one request, so
     every chunk is still shown to the teacher; each pair is then credited to the chunk that holds
     its facts (knowledge.py).

Two wordings is the floor (one when `wordings_per_fact` is 1): the mixer holds one wording of each
fact out as its closed-book test question and trains the others, so a fact asked in one wording is
trained but never tested, and a demo-sized limit spent that way (4 requests on a 35-fact document:
every fact once) left no held-out question at all. Fewer facts in two wordings each are facts the
eval can see learned.

Seed examples rotate over the requests as before: request i of round r on chunk c shows seed
example (c + r) mod S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labtax.data.facts import count_facts
from labtax.sdg.settings import GenerationSettings


@dataclass(frozen=True)
class Ask:
    """One Q&A request: the chunks it shows, the facts it asks about and the wordings of each."""

    chunks: tuple[int, ...]
    facts: int
    wordings: int
    example: int  # the seed example shown

    @property
    def pairs(self) -> int:
        return self.facts * self.wordings


@dataclass(frozen=True)
class KnowledgePlan:
    asks: tuple[Ask, ...]
    chunk_facts: tuple[int, ...]  # the key facts of each chunk (at least 1)
    wordings: int  # the wordings per fact the limit affords (<= settings.wordings_per_fact)
    limit: int  # the most requests allowed
    wanted: int  # the requests of the full plan (every fact, every wording)

    @property
    def requests(self) -> int:
        return len(self.asks)

    @property
    def bound(self) -> bool:
        """Whether the limit cut the plan (fewer wordings, facts or requests than the full plan)."""
        return self.wanted > self.requests

    @property
    def pairs(self) -> int:
        return sum(a.pairs for a in self.asks)

    @property
    def facts(self) -> int:
        return sum(self.chunk_facts)

    @property
    def facts_asked(self) -> int:
        """The facts the requests ask about, at most each chunk's own count."""
        asked = [0] * len(self.chunk_facts)
        for a in self.asks:
            if len(a.chunks) == 1:
                asked[a.chunks[0]] += a.facts
            else:  # a request over several chunks: its facts spread over them in order
                left = a.facts
                for c in a.chunks:
                    take = min(left, self.chunk_facts[c] - asked[c])
                    asked[c] += take
                    left -= take
        return sum(min(n, f) for n, f in zip(asked, self.chunk_facts))

    @property
    def chunks_asked(self) -> int:
        return len({c for a in self.asks for c in a.chunks})


# About what one pair costs in a reply: a question, a one-sentence answer and its share of a "Fact:"
# line (~35 + ~15 / W tokens of the examples in tests/sdg/test_knowledge_facts.py). A request asks for
# no more pairs than its max_tokens holds, so a short reply (the demo's 160 tokens) is not cut short.
PAIR_TOKENS = 40
# The fewest wordings a fact is asked in when wordings_per_fact allows it: one to hold out, one to train.
MIN_WORDINGS = 2


def pairs_per_request(settings: GenerationSettings) -> int:
    """qa_per_request, or fewer when max_tokens cannot hold that many pairs (at least one)."""
    return max(1, min(settings.qa_per_request, settings.max_tokens // PAIR_TOKENS))


def facts_per_chunk(texts: Sequence[str]) -> tuple[int, ...]:
    return tuple(max(1, count_facts(t)) for t in texts)


def _rounds(chunk_facts: Sequence[int], wordings: int, per_request: int, seeds: int) -> list[Ask]:
    """Every fact of every chunk in `wordings` wordings, `per_request` pairs a request at most, in rounds."""
    facts_each = max(1, per_request // wordings)
    per_chunk = [[min(facts_each, f - k) for k in range(0, f, facts_each)] for f in chunk_facts]
    asks: list[Ask] = []
    for r in range(max((len(p) for p in per_chunk), default=0)):
        for c, parts in enumerate(per_chunk):
            if r < len(parts):
                asks.append(Ask((c,), parts[r], wordings, (c + r) % seeds))
    return asks


def plan_knowledge(chunk_facts: Sequence[int], seeds: int, settings: GenerationSettings) -> KnowledgePlan:
    """The leaf's Q&A requests for chunks holding `chunk_facts` facts each (see the module's docstring)."""
    facts = tuple(chunk_facts)
    seeds = max(1, seeds)
    limit = settings.request_limit()
    most = settings.wordings_per_fact
    per_request = pairs_per_request(settings)
    full = _rounds(facts, most, per_request, seeds)
    if not facts:
        return KnowledgePlan((), facts, most, limit, 0)
    floor = min(MIN_WORDINGS, most)
    for wordings in range(most, floor - 1, -1):
        asks = full if wordings == most else _rounds(facts, wordings, per_request, seeds)
        if len(asks) <= limit:
            return KnowledgePlan(tuple(asks), facts, wordings, limit, len(full))
    if limit >= len(facts):
        return KnowledgePlan(tuple(_rounds(facts, floor, per_request, seeds)[:limit]), facts, floor, limit, len(full))
    # Fewer requests than chunks: neighbouring chunks share a request, each group's facts asked up to
    # what one request holds.
    groups = [tuple(range(g * len(facts) // limit, (g + 1) * len(facts) // limit)) for g in range(limit)]
    asks = [Ask(g, max(1, min(sum(facts[c] for c in g), per_request // floor)), floor, g[0] % seeds) for g in groups]
    return KnowledgePlan(tuple(asks), facts, floor, limit, len(full))


def plan_from_texts(texts: Sequence[str], seeds: int, settings: GenerationSettings) -> KnowledgePlan:
    return plan_knowledge(facts_per_chunk(texts), seeds, settings)


def completion_tokens(plan: KnowledgePlan, settings: GenerationSettings) -> int:
    """An upper bound on the plan's Q&A completion tokens: every request answered at full length."""
    return plan.requests * settings.max_tokens
