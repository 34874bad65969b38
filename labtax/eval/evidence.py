"""Per-leaf evidence and verdicts: what the candidate learned, on the strongest evidence a leaf has.

Evidence, strongest first:

  closed_book recall (knowledge leaves): the held-out wordings of the leaf's facts asked with no
              context, each answer right when it holds the reference's key facts (eval/closed_book.py);
              candidate minus base accuracy, paired bootstrap interval over the items. What the
              issue asks of a knowledge leaf: the model answers its facts from memory.
  choices     closed-book multiple-choice accuracy (knowledge leaves): candidate minus base, paired
              bootstrap interval over the items. A style change does not make the right option more
              likely than three wrong ones in the same style, so this needs no controls.
  judge       (changed skill leaves, when a judge is configured) the candidate's pairwise win rate
              against the base, both orders, ties half; interval over the items.
  likelihood  the relative change of the per-token NLL of the reference answers, *minus* the mean
              change of the unchanged leaves sampled as controls: an improvement every leaf shares
              (the answer template, the style) cancels out. Without controls, the leaf's own change.

Verdicts:

  changed leaf    improved   closed_book (when the leaf has it), else choices: interval above 0;
                             judge: above 0.5; likelihood: beyond-controls
                             interval below 0 and the change below -min_improvement_pct
                  regressed  the same intervals on the other side
                  no-change  otherwise (the interval holds 0, or 0.5)
  unchanged leaf  regressed  the likelihood change above fail_on_regression_pct (a tolerance: a
                             little drift is not forgetting; under a noise floor, above it plus
                             what the base's retrain moved the leaf, eval/noise.py), or the
                             choices interval below 0
                  improved   the choices interval above 0 (a likelihood gain on a leaf nobody taught
                             is style, not learning: no-change); the closed_book interval
                             below 0 regresses it too (it forgot facts it knew)
                  no-change  otherwise

A leaf measured without per-item scores (a hand-made report) is decided on its point estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from labtax.eval import record
from labtax.eval.gate import Thresholds
from labtax.eval.record import Accuracy, ClosedBook, Likelihood, Pairwise
from labtax.eval.stats import (
    Interval,
    PairedLikelihood,
    accuracy_change,
    beyond_controls,
    controls_change,
    likelihood_change,
    rng_for,
    win_rate,
)

IMPROVED, NO_CHANGE, REGRESSED = "improved", "no-change", "regressed"


@dataclass
class LeafItems:
    """One leaf's per-item measurements of both models (any of them may be empty)."""

    likelihood: PairedLikelihood | None = None
    base_correct: list[bool] = field(default_factory=list)  # per multiple-choice item
    cand_correct: list[bool] = field(default_factory=list)
    pairwise: list[float] = field(default_factory=list)  # per judged item: 1 won, 0.5 tie, 0 lost
    base_recalled: list[bool] = field(default_factory=list)  # per closed-book item scored for both
    cand_recalled: list[bool] = field(default_factory=list)
    recall_unscored: int = 0  # closed-book items neither key facts nor a judge could score


def _point_interval(value: float | None) -> Interval | None:
    # A point without per-item scores has no interval: the bounds are NaN (written as null).
    return None if value is None or not math.isfinite(value) else Interval(value, math.nan, math.nan)


def _defined(iv: Interval) -> bool:
    return math.isfinite(iv.low) and math.isfinite(iv.high)


def _side(iv: Interval | None, zero: float) -> str:
    if iv is None:
        return NO_CHANGE
    low, high = (iv.low, iv.high) if _defined(iv) else (iv.estimate, iv.estimate)
    if low > zero:
        return "above"
    if high < zero:
        return "below"
    return NO_CHANGE


@dataclass
class Controls:
    """The unchanged leaves' likelihood changes, pooled (each leaf weighs the same)."""

    leaves: int
    point: float | None
    samples: Any = None  # numpy array of resampled means, or None without per-item scores

    @classmethod
    def build(cls, items: dict[str, LeafItems], points: dict[str, float | None], seed: int) -> Controls:
        paired = [i.likelihood for i in items.values() if i.likelihood is not None and len(i.likelihood)]
        if paired:
            point, samples = controls_change(paired, rng_for("controls", seed))
            return cls(len(paired), point, samples)
        finite = [p for p in points.values() if p is not None and math.isfinite(p)]
        return cls(len(finite), sum(finite) / len(finite) if finite else None)


@dataclass(frozen=True)
class LeafEvidence:
    """Every measure one leaf has (None where it has not), and the verdict on the strongest."""

    closed_book: ClosedBook | None
    choices: Accuracy | None
    pairwise: Pairwise | None
    likelihood: Likelihood | None
    verdict: str
    evidence: str

    @property
    def measured(self) -> bool:
        return any(m is not None for m in (self.closed_book, self.choices, self.pairwise, self.likelihood))


def cell(iv: Interval) -> record.Interval:
    """The report's interval: JSON has no infinities or NaN, so a bound that is not finite is None."""
    def f(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return record.Interval(f(iv.estimate), f(iv.low), f(iv.high))


def leaf_evidence(leaf: str, changed: bool, items: LeafItems, change_pct: float | None,
                  controls: Controls, thresholds: Thresholds, *, judged: bool, seed: int = 0,
                  seed_noise: float | None = None) -> LeafEvidence:
    """The evidence of one leaf's report row: every measure it has, and the verdict. `seed_noise`: the
    likelihood change the base's retrain with another seed made on this leaf (eval/noise.py)."""
    rng = rng_for(leaf, seed)
    own: Interval | None = None
    beyond: Interval | None = None
    lk = items.likelihood
    if lk is not None and len(lk):
        own = likelihood_change(lk, rng)
        if changed and controls.leaves and controls.samples is not None:
            beyond = beyond_controls(lk, controls.point or 0.0, controls.samples, rng)
    elif change_pct is not None:
        own = _point_interval(change_pct)
    if changed and beyond is None and own is not None and controls.leaves and controls.point is not None:
        beyond = Interval(own.estimate - controls.point, math.nan, math.nan)
    noise = None if changed or seed_noise is None or not math.isfinite(seed_noise) else seed_noise
    likelihood = None if own is None else Likelihood(
        cell(own), controls.leaves if changed else None, controls.point if changed else None,
        cell(beyond) if beyond is not None else None, noise)

    acc: Interval | None = None
    choices = None
    if items.base_correct:
        acc = accuracy_change(items.base_correct, items.cand_correct, rng)
        n = len(items.base_correct)
        choices = Accuracy(n, sum(items.base_correct) / n, sum(items.cand_correct) / n, cell(acc))

    recall: Interval | None = None
    closed_book = None
    if items.base_recalled:
        recall = accuracy_change(items.base_recalled, items.cand_recalled, rng_for(f"closed-book|{leaf}", seed))
        n = len(items.base_recalled)
        closed_book = ClosedBook(n, items.recall_unscored, sum(items.base_recalled) / n,
                                 sum(items.cand_recalled) / n, cell(recall))

    wins: Interval | None = None
    pairwise = None
    if items.pairwise:
        wins = win_rate(items.pairwise, rng)
        pairwise = Pairwise(len(items.pairwise), cell(wins))

    verdict, evidence = _decide(changed, own, beyond, acc, wins if judged else None, thresholds, recall, noise)
    return LeafEvidence(closed_book, choices, pairwise, likelihood, verdict, evidence)


def _decide(changed: bool, own: Interval | None, beyond: Interval | None, acc: Interval | None,
            wins: Interval | None, t: Thresholds, recall: Interval | None = None,
            seed_noise: float | None = None) -> tuple[str, str]:
    """(verdict, the evidence it rests on)."""
    to_verdict = {"above": IMPROVED, "below": REGRESSED, NO_CHANGE: NO_CHANGE}
    if changed:
        if recall is not None:
            return to_verdict[_side(recall, 0.0)], "closed_book"
        if acc is not None:
            return to_verdict[_side(acc, 0.0)], "choices"
        if wins is not None:
            return to_verdict[_side(wins, 0.5)], "judge"
        ref = beyond if beyond is not None else own
        if ref is None or own is None:
            return NO_CHANGE, "none"
        side = _side(ref, 0.0)
        if side == "below" and own.estimate < -t.min_improvement_pct:
            return IMPROVED, "likelihood"
        if side == "above" and _side(own, 0.0) == "above":
            return REGRESSED, "likelihood"
        return NO_CHANGE, "likelihood"
    # An unchanged leaf: a control. Forgetting is what the gate looks for here; its verdict rests on
    # its choices when it has them (a likelihood gain alone on a leaf nobody taught is style).
    # Under a noise floor the candidate must also be worse than the base's retrain by the tolerance
    # (eval/noise.py): a leaf that any retrain of the old data moves as far is not forgetting.
    tolerance = t.fail_on_regression_pct + max(0.0, seed_noise or 0.0)
    if own is not None and own.estimate > tolerance:
        return REGRESSED, "likelihood"
    if recall is not None and _side(recall, 0.0) == "below":
        return REGRESSED, "closed_book"
    if acc is not None:
        return to_verdict[_side(acc, 0.0)], "choices"
    return NO_CHANGE, "likelihood" if own is not None else "none"
