"""Verdicts that compute a shared prompt prefix once give the probabilities of one full forward pass
per prompt (embedded-small: real tokenizer and weights), and the batches are cut where sharing pays."""

from __future__ import annotations

import asyncio

import pytest

from labtax.teachers.base import TeacherRequest
from labtax.teachers.prefix import MIN_SHARED, plan_batches

torch = pytest.importorskip("torch")

DOC = ("Honey bees live in colonies of one queen, thousands of female workers and a few hundred male drones. "
       "The queen lays up to 2,000 eggs a day in spring; workers build the comb from wax they secrete.")


def _verdict(question: str, answer: str, doc: str = DOC) -> TeacherRequest:
    user = (f"Document:\n{doc}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
            "Is every claim of the answer supported by the document? Reply with one word: yes or no.\nVerdict:")
    return TeacherRequest(messages=(("system", "You check whether an answer is faithful to a document."),
                                    ("user", user)), max_tokens=8, temperature=0.0, choices=("yes", "no"))


def test_batches_follow_the_shared_prefix() -> None:
    head = list(range(100, 160))  # 60 shared tokens
    ids = [head + [1, 2], head + [1, 3, 4], head + [5], list(range(900, 960)) + [7], [8, 9]]
    batches = plan_batches(ids, [0, 1, 2, 3, 4], batch_size=8)
    # The three prompts of one head share a batch and 60 tokens; the unrelated ones go alone, plain.
    assert batches[0] == ([0, 1, 2], 60)
    assert [m for m, _ in batches[1:]] == [[3], [4]] and all(s == 0 for _, s in batches[1:])
    # A full batch is closed; every row keeps at least one token of its own to read the verdict at.
    assert [m for m, _ in plan_batches(ids[:3], [0, 1, 2], batch_size=2)] == [[0, 1], [2]]
    same = [head, head]
    assert plan_batches(same, [0, 1], batch_size=4) == [([0, 1], 59)]
    short = [[1] * (MIN_SHARED - 2) + [2], [1] * (MIN_SHARED - 2) + [3]]
    assert plan_batches(short, [0, 1], batch_size=4) == [([0, 1], 0)]  # too little shared: plain


def test_prefix_verdicts_equal_plain_verdicts(one_thread: None) -> None:
    from labtax.teachers.transformers import TransformersTeacher

    teacher = TransformersTeacher("embedded-small", batch_size=8, threads=1)
    requests = [
        _verdict("How many eggs does the queen lay?", "Up to 2,000 eggs a day in spring."),
        _verdict("How many eggs does the queen lay?", "About fifty a week."),
        _verdict("Who builds the comb?", "The drones, from mud."),
        _verdict("Who builds the comb?", "Workers, from wax they secrete."),
        _verdict("What is the capital of France?", "Paris.", doc="France is a country in Europe."),
    ]
    shared_ids = [teacher.tokenizer(teacher.render(r), add_special_tokens=False)["input_ids"] for r in requests]
    plan = plan_batches(shared_ids, sorted(range(5), key=lambda i: shared_ids[i]), 8)
    assert any(len(m) == 4 and s > 40 for m, s in plan)  # the four honey-bee verdicts share the document

    together = asyncio.run(teacher.complete(requests))
    alone = [asyncio.run(teacher.complete([r]))[0] for r in requests]  # one prompt: a plain forward pass
    for a, b in zip(together, alone):
        assert a.ok and b.ok and a.text == b.text and a.prompt_tokens == b.prompt_tokens
        assert a.choice_probs is not None and b.choice_probs is not None
        assert a.choice_probs["yes"] == pytest.approx(b.choice_probs["yes"], abs=1e-4)
        assert a.extra["choice_mass"] == pytest.approx(b.extra["choice_mass"], rel=1e-3, abs=1e-6)
