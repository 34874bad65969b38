"""The knowledge pipeline's multiple-choice stage: closed-book test items, never training data.

Per leaf, after the Q&A rows are final: requests spread over the chunks ask for `mc_per_request`
items each (a question, the right answer, three wrong answers the chunk contradicts); the
`mc_faithful` judge drops items whose right answer the chunk does not support or whose wrong answers
it does not contradict (the same verdict policy as the Q&A judges); items whose question is a
near-duplicate of a training row's (or a seed's) question are dropped, so the test asks what the
training taught, not the same sentence back; the first `mc_per_leaf` are kept. The options are
shuffled with a seed derived from the leaf and item, so the right one is not always first.

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

from labtax.sdg.dedup import Deduper
from labtax.sdg.documents import Chunk
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.filters import Row
from labtax.sdg.pipelines.parse import parse_mc, parse_yes
from labtax.sdg.pipelines.runner import Runner, derive_seed
from labtax.sdg.settings import GenerationSettings
from labtax.teachers.base import TeacherResponse

STAGE, JUDGE = "mc_items", "mc_faithful"


def plan(settings: GenerationSettings) -> dict[str, int]:
    """The most requests of the two stages (0 when multiple-choice items are off)."""
    if settings.mc_per_leaf == 0:
        return {}
    first = math.ceil(settings.mc_per_leaf * settings.overgenerate / settings.mc_per_request)
    return {STAGE: first, JUDGE: first * settings.mc_per_request}


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
            else:
                rows.append(Row(question, chunk.text, right,
                                extra={"wrong": wrong, "document": chunk.document, "chunk": chunk.index}))

    def make(i: int, row: Row) -> Any:
        wrong = "\n".join(f"- {w}" for w in row.extra["wrong"])
        return runner.request(JUDGE, i, chunk=row.context or "", question=row.question, answer=row.answer or "",
                              wrong=wrong)

    drop = runner.pipeline.stages[JUDGE].drop or "mc_unfaithful"
    # After the training rows (the dedup above needs them), so the judge's drops are the items' own.
    rows = await filters.through(runner, rows, [(None, filters.judge_step(runner, JUDGE, make, parse_yes, drop))])
    if len(rows) > s.mc_per_leaf:
        runner.drop("mc_over_quota", len(rows) - s.mc_per_leaf)
    rows = rows[: s.mc_per_leaf]
    return [_test_row(runner, i, row) for i, row in enumerate(rows)], generated


def _test_row(runner: Runner, i: int, row: Row) -> dict[str, Any]:
    right = row.answer or ""
    choices = [right, *row.extra["wrong"]]
    random.Random(derive_seed(runner.settings.seed, runner.leaf.path, "mc_order", i)).shuffle(choices)
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
