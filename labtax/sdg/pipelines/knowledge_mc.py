"""The knowledge pipeline's multiple-choice stage: closed-book test items, never training data.

Per leaf, after the Q&A rows are final: requests spread over the chunks ask for `mc_per_request`
items each (a question, the right answer, three wrong answers the chunk contradicts); the
extractive check drops an item whose right answer names a number, date or name the chunk does not hold
(`mc_key_not_in_chunk`) or one of whose wrong answers the chunk holds in full (`mc_distractor_in_chunk`:
a wrong option whose every fact the chunk states may well be right); the `mc_faithful` judge drops
items whose right answer the chunk does not support or whose wrong answers it does not contradict
(the same verdict policy as the Q&A judges); the teacher, shown the chunk and the lettered options,
must pick the right one (`mc_open_book_missed` otherwise: an item its own writer cannot answer with
the document open is not a fair test); items whose question is a near-duplicate of a training
row's (or a seed's) question are dropped, so the test asks what the training taught, not the same
sentence back; the first `mc_per_leaf` are kept. The options are shuffled with a seed derived from
the leaf and item, so the right one is not always first.

A wrong option without any number, date or name is left to the judge and the open-book answer: the
extractive check cannot tell it from the chunk.

Each item becomes a test row (`labtax.data.TestRow`): the question alone as the user turn (closed
book), the right option as the assistant turn, top-level `choices` and `answer_index`, and
`metadata.source: "mc"`, `shown_to_teacher: false` (the teacher wrote it; no one showed it to the
teacher as an example).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from labtax.data.facts import key_facts, unsupported_facts
from labtax.sdg.dedup import Deduper
from labtax.sdg.documents import Chunk
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.filters import Row
from labtax.sdg.pipelines.parse import parse_choice, parse_mc, parse_yes
from labtax.sdg.pipelines.runner import Runner, derive_seed
from labtax.sdg.settings import GenerationSettings
from labtax.teachers.base import TeacherResponse

STAGE, JUDGE, OPEN_BOOK = "mc_items", "mc_faithful", "mc_open_book"
LETTERS = "ABCD"


def plan(settings: GenerationSettings) -> dict[str, int]:
    """The most requests of the two stages (0 when multiple-choice items are off)."""
    if settings.mc_per_leaf == 0:
        return {}
    first = math.ceil(settings.mc_per_leaf * settings.overgenerate / settings.mc_per_request)
    return {STAGE: first, JUDGE: first * settings.mc_per_request, OPEN_BOOK: first * settings.mc_per_request}


def _option_text(option: str) -> str:
    # Inside a sentence, so that an option that is a bare name ("Mars") reads as one: facts.py does
    # not count a sentence's first word as a name.
    return f"It is {option}."


def key_supported(option: str, chunk: str) -> bool:
    """The option's numbers, dates and names are all in the chunk (vacuously so without any)."""
    return not unsupported_facts(_option_text(option), chunk)


def distractor_stated(option: str, chunk: str) -> bool:
    """A wrong option the chunk holds in full: it has key facts and every one is in the chunk."""
    text = _option_text(option)
    return bool(key_facts(text)) and not unsupported_facts(text, chunk)


def _pick(chunks: Sequence[Chunk], i: int, requests: int) -> Chunk:
    # Spread evenly over the document, as the Q&A requests are.
    return chunks[(i * len(chunks)) // requests] if len(chunks) >= requests else chunks[i % len(chunks)]


# The chunks the item requests were asked about and their replies (empty when items are off).
Asked = tuple[list[Chunk], list[TeacherResponse]]


async def mc_generate(runner: Runner, chunks: Sequence[Chunk], domain: str, outline: str) -> Asked:
    """The item requests: they need only the chunks, so they go out beside the Q&A requests."""
    s = runner.settings
    count = plan(s).get(STAGE, 0)
    if not chunks or count == 0:
        return [], []
    picked = [_pick(chunks, i, count) for i in range(count)]
    requests = [runner.request(STAGE, i, domain=domain, outline=outline, chunk=c.text, n=str(s.mc_per_request))
                for i, c in enumerate(picked)]
    return picked, await runner.run(STAGE, requests)


async def mc_items(runner: Runner, asked: Asked, training: Sequence[Row],
                   seed_questions: Sequence[str]) -> list[dict[str, Any]]:
    """The leaf's multiple-choice test rows (path-free, as the store keeps them), once the training
    rows are final. Their counts are kept apart in `stats["mc"]` ({generated, kept, dropped}): the
    leaf's own generated/kept/dropped describe its training rows."""
    saved, runner.dropped = runner.dropped, Counter()
    try:
        items, generated = await _mc_items(runner, asked, training, seed_questions)
        runner.extra["mc"] = {"generated": generated, "kept": len(items), "dropped": dict(sorted(runner.dropped.items()))}
        return items
    finally:
        runner.dropped = saved


async def _mc_items(runner: Runner, asked: Asked, training: Sequence[Row],
                    seed_questions: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    s = runner.settings
    picked, responses = asked
    if not picked:
        return [], 0
    # Against the training rows and the seeds: a test item must not be a sentence the model saw.
    seen = Deduper(s.dedup_threshold)
    for text in [row.question for row in training] + list(seed_questions):
        seen.add(text)
    rows: list[Row] = []
    generated = 0
    for chunk, resp in zip(picked, responses):
        if not resp.ok:
            continue
        items = parse_mc(resp.text)[: s.mc_per_request]
        if not items:
            runner.unusable(STAGE)
            continue
        for question, right, wrong in items:
            generated += 1
            why = seen.check(question)
            if why:
                runner.drop(f"mc_duplicate_{why}")
            elif not key_supported(right, chunk.text):
                runner.drop("mc_key_not_in_chunk")
            elif any(distractor_stated(w, chunk.text) for w in wrong):
                runner.drop("mc_distractor_in_chunk")
            else:
                choices = [right, *wrong]
                random.Random(derive_seed(s.seed, runner.leaf.path, "mc_order", generated)).shuffle(choices)
                rows.append(Row(question, chunk.text, right,
                                extra={"wrong": wrong, "choices": choices, "document": chunk.document,
                                       "chunk": chunk.index}))

    def make(i: int, row: Row) -> Any:
        wrong = "\n".join(f"- {w}" for w in row.extra["wrong"])
        return runner.request(JUDGE, i, chunk=row.context or "", question=row.question, answer=row.answer or "",
                              wrong=wrong)

    drop = runner.pipeline.stages[JUDGE].drop or "mc_unfaithful"
    # After the training rows (the dedup above needs them), so the judge's drops are the items' own.
    rows = await filters.through(runner, rows, [(None, filters.judge_step(runner, JUDGE, make, parse_yes, drop)),
                                                (None, open_book_step(runner))])
    if len(rows) > s.mc_per_leaf:
        runner.drop("mc_over_quota", len(rows) - s.mc_per_leaf)
    rows = rows[: s.mc_per_leaf]
    return [_test_row(runner, i, row) for i, row in enumerate(rows)], generated


def open_book_step(runner: Runner) -> filters.Step:
    """The teacher, shown the chunk, answers the item; it stays when the pick is the right option (the
    most probable letter when the teacher gives probabilities, else the letter its reply names)."""
    drop = runner.pipeline.stages[OPEN_BOOK].drop or "mc_open_book_missed"

    def make(i: int, row: Row) -> Any:
        options = "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(row.extra["choices"]))
        return runner.request(OPEN_BOOK, i, chunk=row.context or "", question=row.question, options=options)

    async def step(i: int, row: Row) -> bool:
        n = len(row.extra["choices"])
        resp = await runner.ask(OPEN_BOOK, make(i, row), readable=lambda t: parse_choice(t, n) is not None)
        if not resp.ok:
            runner.drop("teacher_error")
            return False
        probs = resp.choice_probs
        if probs:
            pick: int | None = max(range(n), key=lambda k: probs.get(LETTERS[k], 0.0))
        else:
            pick = parse_choice(resp.text, n)
        key = row.extra["choices"].index(row.answer)
        passes = None if pick is None else pick == key
        return filters.apply_verdict(runner, OPEN_BOOK, row, None if pick is None else LETTERS[pick], passes, drop)

    return step


def _test_row(runner: Runner, i: int, row: Row) -> dict[str, Any]:
    right = row.answer or ""
    choices = list(row.extra["choices"])
    return {
        "messages": [{"role": "user", "content": row.question}, {"role": "assistant", "content": right}],
        "choices": choices,
        "answer_index": choices.index(right),
        "metadata": {
            "kind": runner.leaf.kind, "source": "mc", "shown_to_teacher": False, "question": row.question,
            "context": row.context, "document": row.extra["document"], "chunk": row.extra["chunk"],
            "scores": dict(row.scores), "teacher": runner.teacher.model_id, "seed": runner.settings.seed,
        },
        "unmask": False,
    }
