"""Closed-book recall: did the model learn a knowledge leaf's facts, asked in words it never trained on?

The held-out items are the mixer's `closed_book: true` test rows (one wording of each fact with at
least two, never trained on in any phase; its other wordings were). Each model answers each question
greedily with no context (`max_new_tokens`, a short answer), and an answer is right when it holds
every key fact of the reference (`labtax.data.facts`: numbers, dates and names, normalised) that the
question does not already hold: echoing "1899" from "What happened in 1899?" proves nothing. A
reference with no such fact (free text) is left to a judge when one is configured (the prompt file
`prompts/closed_book.yaml`, [[YES]]/[[NO]]), else it is not scored (counted as `unscored`).

The per-leaf evidence is paired: base and candidate answered the same items, so the accuracy change
gets a paired bootstrap interval (stats.accuracy_change), reported next to the multiple choice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from labtax.data.facts import unsupported_facts
from labtax.eval.data import Example
from labtax.teachers.base import Teacher, TeacherRequest

CLOSED_BOOK_MAX_NEW_TOKENS = 48  # a short answer: the fact, not an essay (and 135M on a CPU)
CLOSED_BOOK_TAG = "eval_closed_book"
PROMPT_FILE = Path(__file__).parent / "prompts" / "closed_book.yaml"
_VERDICT = re.compile(r"\[\[\s*(YES|NO)\s*\]\]", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Recall:
    """One answer's score: `correct` None when the key facts cannot decide (no judge said)."""

    correct: bool | None
    required: tuple[str, ...]  # the reference's key facts the question does not hold
    missing: tuple[str, ...]  # those the answer lacks


def required_facts(question: str, reference: str) -> tuple[str, ...]:
    """The key facts an answer must hold: the reference's, less those the question gives away."""
    return unsupported_facts(reference, question)


def score_answer(question: str, reference: str, answer: str) -> Recall:
    required = required_facts(question, reference)
    if not required:
        return Recall(None, (), ())
    lacking = set(unsupported_facts(reference, answer))
    missing = tuple(f for f in required if f in lacking)
    return Recall(not missing, required, missing)


def closed_book_examples(examples: Sequence[Example]) -> list[Example]:
    """A leaf's closed-book items (the mixer's held-out wordings)."""
    return [ex for ex in examples if ex.closed_book and not ex.is_choice]


@cache
def _prompt() -> tuple[str, str]:
    data = yaml.safe_load(PROMPT_FILE.read_text(encoding="utf-8"))
    return str(data["system"]).strip(), str(data["user"]).strip()


def judge_request(example: Example, answer: str, *, max_tokens: int = 256) -> TeacherRequest:
    system, user = _prompt()
    values = {"question": example.question(), "reference": example.answer, "answer": answer}
    # One pass: an answer holding "{reference}" is never expanded again.
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), user)
    return TeacherRequest(messages=(("system", system), ("user", text)), max_tokens=max_tokens,
                          temperature=0.0, seed=0, tag=CLOSED_BOOK_TAG)


def parse_yes_no(text: str) -> bool | None:
    found = _VERDICT.findall(text)
    return found[-1].upper() == "YES" if found else None


def judge_answers(teacher: Teacher, items: Sequence[tuple[Example, str]]) -> list[bool | None]:
    """The judge's verdict on each (item, answer); None for a failed or unreadable reply. One event
    loop, which closes `teacher` (a client's HTTP session belongs to the loop it was opened on)."""
    if not items:
        return []
    requests = [judge_request(ex, answer) for ex, answer in items]

    async def run() -> list[bool | None]:
        try:
            responses = await teacher.complete(requests)
        finally:
            await teacher.aclose()
        return [parse_yes_no(r.text) if r.ok else None for r in responses]

    return asyncio.run(run())


def score_leaf(examples: Sequence[Example], answers: Sequence[str]) -> list[Recall]:
    return [score_answer(ex.question(), ex.answer, a) for ex, a in zip(examples, answers)]
