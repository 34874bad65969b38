"""Rows (candidate samples) and the steps that keep or drop them, shared by the skills and knowledge
pipelines. Every dropped row is counted under one reason in the runner's `dropped` counter.

Judges and the scorer read their verdict from probabilities when the teacher gives them (P(yes), or
the expected 1-3 score), against a threshold calibrated on the leaf's seeds (calibrate.py); every
row's value, the cut and the outcome are in `row.verdicts` (the sample's metadata.verdicts). Without
probabilities the teacher's text verdict is parsed, as before."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labtax.sdg.pipelines.calibrate import Calibration, calibrate, verdict_value
from labtax.sdg.pipelines.parse import parse_answer, parse_score
from labtax.sdg.pipelines.runner import Runner, derive_seed
from labtax.sdg.pipelines.stream import Turns
from labtax.teachers.base import TeacherRequest, TeacherResponse
from labtax.teachers.replies import OVERLONG


@dataclass
class Row:
    question: str
    context: str | None = None
    answer: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)


# Good seeds and broken copies of them for one judge stage (see calibrate.py).
Examples = tuple[list[Row], list[Row]]


def rng_for(runner: Runner, stage: str, index: int) -> random.Random:
    """A private random stream for choosing in-context examples: same inputs, same choice."""
    return random.Random(derive_seed(runner.settings.seed, runner.leaf.path, f"{stage}/examples", index))


def apply_verdict(runner: Runner, stage: str, row: Row, value: Any, passes: bool | None,
                   drop_reason: str) -> bool:
    """The one verdict policy of judges and scorers: record `value` in the row's scores and say whether
    the row stays. `passes` is None for an unreadable answer (kept only under
    settings.unreadable_verdicts='keep'); a failing verdict drops the row unless settings.judges is
    'advisory', where it is only counted."""
    if passes is None:
        if runner.settings.unreadable_verdicts != "keep":
            runner.drop(f"{stage}_unparsed")
            return False
        runner.kept_unreadable(stage)
    elif not passes:
        if runner.settings.judges != "advisory":
            runner.drop(drop_reason)
            return False
        runner.kept_advisory(stage)
    row.scores[stage] = value
    return True


def _graded(runner: Runner, stage: str, row: Row, value: float, cal: Calibration, drop_reason: str,
            recorded: Any) -> bool:
    """A verdict read from probabilities: compare with the calibrated cut, or keep the row unjudged."""
    entry: dict[str, Any] = {"p": round(value, 4), "threshold": cal.threshold, "auc": cal.auc,
                             "calibration": cal.status}
    row.verdicts[stage] = entry
    if not cal.usable:
        entry["verdict"] = "unjudged"
        runner.unjudged(stage)
        row.scores[stage] = None
        return True
    assert cal.threshold is not None
    passes = value >= cal.threshold
    entry["verdict"] = "pass" if passes else "fail"
    return apply_verdict(runner, stage, row, recorded if recorded is not None else passes, passes, drop_reason)


class Verdicts:
    """A judge stage's calibration for this leaf. The leaf's first verdict that comes with
    probabilities starts the calibration of every judge stage of the leaf at once (beside the rows
    still flowing); a row graded by probabilities waits for its stage's cut. A teacher that never
    gives probabilities costs no calibration request: its stages are "text"; a stage without rows
    and without calibration records nothing."""

    def __init__(self, runner: Runner, stage: str, make: Callable[[int, Row], TeacherRequest],
                 examples: Examples | None, yes: str | None, default: float) -> None:
        self.runner, self.stage, self.make, self.examples = runner, stage, make, examples
        self.yes, self.default = yes, default
        self.asked = False
        self._task: asyncio.Task[None] | None = None
        runner.verdicts.append(self)

    def start(self) -> None:
        if self._task is None and self.stage not in self.runner.calibrations:
            self._task = self.runner.spawn(self._calibrate())

    async def _calibrate(self) -> None:
        if self.examples is None:
            cal = Calibration(self.stage, "default", self.default)
        else:
            cal = await calibrate(self.runner, self.stage, self.examples[0], self.examples[1], self.make, self.yes,
                                  self.default)
        self.runner.calibrations[self.stage] = cal

    async def value(self, response: TeacherResponse) -> tuple[float | None, Calibration | None]:
        """(P(yes) or the expected score, the calibration) of an answered row; (None, None) when the
        teacher gave no probabilities: the caller reads the text verdict."""
        self.asked = True
        value = verdict_value(response, self.yes)
        if value is None:
            return None, None
        for verdicts in self.runner.verdicts:
            verdicts.start()
        if self._task is not None:
            await asyncio.shield(self._task)  # shared by every row of the stage: one row's cancel is not its
        return value, self.runner.calibrations[self.stage]

    def finish(self) -> None:
        if self.asked and self.stage not in self.runner.calibrations:
            self.runner.calibrations[self.stage] = Calibration(self.stage, "text")


# A step of a row through a stage: (the row's index in the stage, the row) -> whether it stays.
Step = Callable[[int, Row], Awaitable[bool]]


class Chain:
    """Rows through the same steps, each row as soon as its previous step answered. `add` numbers
    rows in the leaf's order (call it in a `Turns` turn); a row's index at each step is its position
    among the rows still alive there, as a one-stage-at-a-time run numbers them. `funnel` names the
    funnel count each step adds to (None: none)."""

    def __init__(self, runner: Runner, steps: Sequence[tuple[str | None, Step]]) -> None:
        self.runner = runner
        self.steps = list(steps)
        self.turns = [Turns() for _ in self.steps]
        self.size = 0
        self._kept: dict[int, Row] = {}

    def add(self, row: Row) -> None:
        self.size += 1
        self.runner.spawn(self._through(self.size - 1, row))

    async def _through(self, k: int, row: Row) -> None:
        alive = True
        for (funnel, step), turns in zip(self.steps, self.turns):
            index = await turns.number(k, alive)  # alive or not: the rows after it wait on its turn
            if index is not None:
                alive = await step(index, row)
                if alive and funnel:
                    self.runner.count(funnel, 1)
        if alive:
            self._kept[k] = row

    def rows(self) -> list[Row]:
        """The rows that passed every step, in the order they were added (after `runner.settle()`)."""
        return [self._kept[k] for k in sorted(self._kept)]


async def through(runner: Runner, rows: Sequence[Row], steps: Sequence[tuple[str | None, Step]]) -> list[Row]:
    """A list of rows through steps at once: the rows that passed, in order."""
    chain = Chain(runner, steps)
    for row in rows:
        chain.add(row)
    await runner.settle()
    return chain.rows()


def judge_step(runner: Runner, stage: str, make: Callable[[int, Row], TeacherRequest],
               parse: Callable[[str], bool | None], drop_reason: str, examples: Examples | None = None,
               yes: str = "yes") -> Step:
    """Ask a yes/no (keep/drop) question about a row; it stays when judged yes (P(`yes`) at or above
    the leaf's calibrated cut when the teacher gives probabilities)."""
    verdicts = Verdicts(runner, stage, make, examples, yes, 0.5)

    async def step(i: int, row: Row) -> bool:
        resp = await runner.ask(stage, make(i, row), readable=lambda t: parse(t) is not None)
        if not resp.ok:
            runner.drop("teacher_error")
            return False
        value, cal = await verdicts.value(resp)
        if value is not None and cal is not None:
            return _graded(runner, stage, row, value, cal, drop_reason, None)
        verdict = parse(resp.text)
        return apply_verdict(runner, stage, row, verdict, verdict, drop_reason)

    return step


def answer_step(runner: Runner, make: Callable[[int, Row], TeacherRequest]) -> Step:
    """Answer a row's question; an empty or truncated answer drops its row."""

    async def step(i: int, row: Row) -> bool:
        resp = await runner.ask("answer", make(i, row), readable=lambda t: parse_answer(t) is not None)
        if not resp.ok:
            runner.drop("teacher_error")
        elif resp.finish_reason == "length":
            runner.drop("answer_truncated")
        elif resp.finish_reason == OVERLONG:  # longer than max_tokens allows: not from this request
            runner.drop("answer_overlong")
        elif (text := parse_answer(resp.text)) is None:
            runner.drop("answer_empty")
        else:
            row.answer = text
            return True
        return False

    return step


def score_step(runner: Runner, make: Callable[[int, Row], TeacherRequest], examples: Examples | None = None) -> Step:
    """Score a pair 1-3; it stays at or above settings.score_threshold (with probabilities: the
    expected score at or above the leaf's calibrated cut)."""
    default = float(runner.settings.score_threshold)
    verdicts = Verdicts(runner, "score", make, examples, None, default)

    async def step(i: int, row: Row) -> bool:
        resp = await runner.ask("score", make(i, row), readable=lambda t: parse_score(t) is not None)
        if not resp.ok:
            runner.drop("teacher_error")
            return False
        expected, cal = await verdicts.value(resp)
        if expected is not None and cal is not None:
            # Recorded on the nominal scale: shifted so that the leaf's calibrated cut sits at
            # settings.score_threshold (a kept pair reads >= it, as with text scores).
            shifted = expected if cal.threshold is None else expected - cal.threshold + default
            return _graded(runner, "score", row, expected, cal, "low_score", round(min(3.0, max(1.0, shifted)), 3))
        value = parse_score(resp.text)
        passes = None if value is None else value >= runner.settings.score_threshold
        return apply_verdict(runner, "score", row, value, passes, "low_score")

    return step


def trim(runner: Runner, rows: Sequence[Row], limit: int) -> list[Row]:
    """Keep the first `limit` rows, the leaf's quota (generation overshoots on purpose); see `split_quota`."""
    return split_quota(runner, rows, limit)[0]


def split_quota(runner: Runner, rows: Sequence[Row], limit: int) -> tuple[list[Row], list[Row]]:
    """(training rows, validation rows): the first `limit` rows (the leaf's quota) train; of the rows
    past the quota, the next validation_per_leaf are held out as the validation split (judged like the
    rest, never trained on); any further ones are dropped as over_quota."""
    validation = list(rows[limit: limit + runner.settings.validation_per_leaf])
    if len(rows) > limit + len(validation):
        runner.drop("over_quota", len(rows) - limit - len(validation))
    if validation:
        # Generated, kept by every filter, then held out: counted like a drop so that kept + dropped
        # still adds up to generated.
        runner.drop("held_out_validation", len(validation))
    return list(rows[:limit]), validation


def as_validation(sample: dict[str, Any]) -> dict[str, Any]:
    """A held-out generated row, marked for the validation split."""
    return {**sample, "metadata": {**sample.get("metadata", {}), "split": "validation"}}


def metadata(runner: Runner, row: Row) -> dict[str, Any]:
    return {
        "leaf": runner.leaf.path,
        "kind": runner.leaf.kind,
        "pipeline": runner.pipeline.name,
        "question": row.question,
        "answer": row.answer,
        "context": row.context,
        "scores": dict(row.scores),
        "verdicts": dict(row.verdicts),
        "teacher": runner.teacher.model_id,
        "seed": runner.settings.seed,
        **row.extra,
    }


def responses_ok(responses: Sequence[TeacherResponse]) -> int:
    return sum(1 for r in responses if r.ok)
