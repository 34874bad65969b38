"""Per-request sampling: a request's text does not depend on the requests sharing its batch."""

from __future__ import annotations

import asyncio

import torch

from labtax.teachers.base import TeacherRequest
from labtax.teachers.sampling import PerRequestSampler
from labtax.teachers.transformers import TransformersTeacher


def _requests(tag: str, n: int, seed0: int) -> list[TeacherRequest]:
    return [TeacherRequest(messages=(("user", f"{tag} question number {i}: tell me about rivers."),),
                           max_tokens=12, temperature=0.7, top_p=0.9, seed=seed0 + i, tag=tag)
            for i in range(n)]


def test_a_leaf_samples_the_same_alone_or_batched_with_another() -> None:
    torch.set_num_threads(1)
    teacher = TransformersTeacher("tiny", batch_size=8, threads=1)
    mine = _requests("alpha", 3, 100)
    other = _requests("beta beta beta", 4, 500)  # longer prompts: batches and padding change

    async def go(reqs: list[TeacherRequest]) -> list[str]:
        return [r.text for r in await teacher.complete(reqs)]

    alone = asyncio.run(go(mine))
    mixed = asyncio.run(go([other[0], mine[0], other[1], mine[1], other[2], other[3], mine[2]]))
    assert [mixed[1], mixed[3], mixed[6]] == alone
    assert len(set(alone)) > 1  # the seeds differ, so do the samples
    again = asyncio.run(go(_requests("alpha", 3, 200)))
    assert again != alone


def test_the_sampler_leaves_one_token_per_row_from_its_own_generator() -> None:
    scores = torch.randn(3, 50)
    a = PerRequestSampler([1, 2, 3], 0.8, 0.9, "cpu")(torch.zeros(3, 1, dtype=torch.long), scores)
    b = PerRequestSampler([9, 2, 7], 0.8, 0.9, "cpu")(torch.zeros(3, 1, dtype=torch.long), scores)
    assert all(int(torch.isfinite(row).sum()) == 1 for row in a)
    assert a[1].argmax() == b[1].argmax()  # same seed, same row: same token
    top = PerRequestSampler([1], 1.0, 1e-6, "cpu")(torch.zeros(1, 1, dtype=torch.long), scores[:1])
    assert top[0].argmax() == scores[0].argmax()  # a tiny top_p keeps only the best token
