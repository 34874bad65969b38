"""Rows (candidate samples) and the steps that keep or drop them, shared by the skills and knowledge
pipelines. Every dropped row is counted under one reason in the runner's `dropped` counter.

Judges and the scorer read their verdict from probabilities when the teacher gives them (P(yes), or
the expected 1-3 score), against a threshold calibrated on the leaf's seeds (calibrate.py); every
row's value, the cut and the outcome are in `row.verdicts` (the sample's metadata.verdicts). Without
probabilities the teacher's text verdict is parsed, as before."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labtax.sdg.pipelines.calibrate import Calibration, calibrate, verdict_value
from labtax.sdg.pipelines.parse import parse_answer, parse_score
from labtax.sdg.pipelines.runner import Runner, derive_seed
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


def _apply_verdict(runner: Runner, stage: str, row: Row, value: Any, passes: bool | None,
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


async def _ask(runner: Runner, stage: str, rows: list[Row], make: Callable[[int, Row], TeacherRequest],
               readable: Callable[[str], bool], examples: Examples | None, yes: str | None,
               default: float) -> tuple[list[tuple[Row, TeacherResponse, float | None]], Calibration | None]:
    """One verdict per row and the stage's calibration for this leaf. Rows whose request failed are
    dropped here (counted); each answered row comes with its value read from probabilities, None when
    the teacher gave none or the calibration says to read the text."""
    responses = await runner.run(stage, [make(i, row) for i, row in enumerate(rows)], readable=readable)
    values = [verdict_value(r, yes) for r in responses]
    cal = await _calibration(runner, stage, values, examples, make, yes, default) if rows else None
    graded = cal is not None and cal.status != "text"
    answered = []
    for row, resp, value in zip(rows, responses, values):
        if resp.ok:
            answered.append((row, resp, value if graded else None))
        else:
            runner.drop("teacher_error")
    return answered, cal


async def _calibration(runner: Runner, stage: str, values: Sequence[float | None], examples: Examples | None,
                       make: Callable[[int, Row], TeacherRequest], yes: str | None, default: float) -> Calibration:
    """The stage's calibration for this leaf: "text" when the teacher gave no probabilities (nothing
    more is asked), else fitted on the examples once per leaf and stage."""
    if all(v is None for v in values):
        cal = Calibration(stage, "text")
    elif stage in runner.calibrations:
        return runner.calibrations[stage]
    elif examples is None:
        cal = Calibration(stage, "default", default)
    else:
        cal = await calibrate(runner, stage, examples[0], examples[1], make, yes, default)
    runner.calibrations[stage] = cal
    return cal


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
    return _apply_verdict(runner, stage, row, recorded if recorded is not None else passes, passes, drop_reason)


async def judge(
    runner: Runner,
    stage: str,
    rows: list[Row],
    make: Callable[[int, Row], TeacherRequest],
    parse: Callable[[str], bool | None],
    drop_reason: str,
    examples: Examples | None = None,
    yes: str = "yes",
) -> list[Row]:
    """Ask a yes/no (keep/drop) question about every row; keep the rows judged yes (P(`yes`) at or
    above the leaf's calibrated cut when the teacher gives probabilities)."""
    answered, cal = await _ask(runner, stage, rows, make, lambda t: parse(t) is not None, examples, yes, 0.5)
    kept = []
    for row, resp, value in answered:
        if value is not None and cal is not None:
            if _graded(runner, stage, row, value, cal, drop_reason, None):
                kept.append(row)
            continue
        verdict = parse(resp.text)
        if _apply_verdict(runner, stage, row, verdict, verdict, drop_reason):
            kept.append(row)
    return kept


async def answer(runner: Runner, rows: list[Row], make: Callable[[int, Row], TeacherRequest]) -> list[Row]:
    """Answer every row's question; empty and truncated answers drop their row."""
    responses = await runner.run("answer", [make(i, row) for i, row in enumerate(rows)],
                                 readable=lambda t: parse_answer(t) is not None)
    kept = []
    for row, resp in zip(rows, responses):
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
            kept.append(row)
    return kept


async def score(runner: Runner, rows: list[Row], make: Callable[[int, Row], TeacherRequest],
                examples: Examples | None = None) -> list[Row]:
    """Score every pair 1-3; keep those at or above settings.score_threshold (with probabilities: the
    expected score at or above the leaf's calibrated cut)."""
    default = float(runner.settings.score_threshold)
    answered, cal = await _ask(runner, "score", rows, make, lambda t: parse_score(t) is not None, examples,
                               None, default)
    kept = []
    for row, resp, expected in answered:
        if expected is not None and cal is not None:
            # Recorded on the nominal scale: shifted so that the leaf's calibrated cut sits at
            # settings.score_threshold (a kept pair reads >= it, as with text scores).
            shifted = expected if cal.threshold is None else expected - cal.threshold + default
            if _graded(runner, "score", row, expected, cal, "low_score", round(min(3.0, max(1.0, shifted)), 3)):
                kept.append(row)
            continue
        value = parse_score(resp.text)
        passes = None if value is None else value >= runner.settings.score_threshold
        if _apply_verdict(runner, "score", row, value, passes, "low_score"):
            kept.append(row)
    return kept


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
