"""Per-leaf calibration of the judges: what P(yes) (or the expected 1-3 score) means for THIS teacher on
THIS leaf, measured on the leaf's own seeds against deliberately broken copies of them.

A judge stage asks its question about the seeds (which should pass) and about broken copies (which
should not): an off-topic question, a seed question paired with another seed's answer (a wrong
answer), an answer the document does not contain. Their verdict values give
  - the AUC: the chance that a random good example scores above a random broken one (0.5 = chance);
  - the threshold: the cut that best separates the two (Youden's J; ties to the middle of the gap).
A judge whose AUC stays below settings.judge_min_auc cannot tell good from broken here: it is reported
unusable, and the rows it would have judged are kept and marked unjudged rather than filtered by
noise. A 1.5B and a 70B teacher put their probabilities in very different places; the same default
(the AUC floor) works for both because each gets its own threshold.

Calibration needs graded verdicts: with a teacher that returns only text (no probabilities) the
judges' text verdicts are used as they are (status "text") and no calibration requests are sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labtax.teachers.base import TeacherRequest, TeacherResponse
from labtax.teachers.choices import expected_score

MIN_EXAMPLES = 2  # per side; fewer seeds than this and the default cut is used ("default")
OFF_TOPIC = Path(__file__).with_name("off_topic.yaml")


@dataclass
class Calibration:
    stage: str
    status: str  # calibrated | unusable | default | text
    threshold: float | None = None
    auc: float | None = None
    good: list[float] = field(default_factory=list)
    broken: list[float] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status != "unusable"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "threshold": self.threshold, "auc": self.auc,
            "good": [round(v, 4) for v in self.good], "broken": [round(v, 4) for v in self.broken],
        }


def verdict_value(response: TeacherResponse, yes: str | None) -> float | None:
    """P(yes) of a yes/no verdict, or the expected score of a 1-3 grade (`yes` None); None without
    probabilities."""
    probs = response.choice_probs if response.ok else None
    if probs is None:
        return None
    if yes is None:
        return expected_score(probs)
    return probs.get(yes)


def auc(good: Sequence[float], broken: Sequence[float]) -> float:
    """P(random good > random broken), ties counting half (the Mann-Whitney statistic)."""
    wins = sum(1.0 if g > b else 0.5 if g == b else 0.0 for g in good for b in broken)
    return wins / (len(good) * len(broken))


def best_threshold(good: Sequence[float], broken: Sequence[float]) -> float:
    """The cut (value >= cut passes) with the best TPR - FPR; among equals, the middle one."""
    values = sorted(set(good) | set(broken))
    cuts = [values[0]] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1e-6]
    scored = []
    for cut in cuts:
        tpr = sum(g >= cut for g in good) / len(good)
        fpr = sum(b >= cut for b in broken) / len(broken)
        scored.append((round(tpr - fpr, 9), cut))
    best = max(j for j, _ in scored)
    tied = [cut for j, cut in scored if j == best]
    return round(tied[len(tied) // 2], 6)


def fit(stage: str, good: list[float], broken: list[float], *, min_auc: float, default: float) -> Calibration:
    if len(good) < MIN_EXAMPLES or len(broken) < MIN_EXAMPLES:
        return Calibration(stage, "default", default, None, good, broken)
    area = round(auc(good, broken), 4)
    if area < min_auc:
        return Calibration(stage, "unusable", None, area, good, broken)
    return Calibration(stage, "calibrated", best_threshold(good, broken), area, good, broken)


def requests_needed(examples: tuple[Sequence[Any], Sequence[Any]], most: int) -> int:
    """The calibration requests of one judge on one leaf: each side capped at `most`, as `calibrate`
    sends them (an upper bound: a teacher without probabilities is sent none)."""
    good, broken = examples
    return min(most, len(good)) + min(most, len(broken))


async def calibrate(
    runner: Any,
    stage: str,
    good: Sequence[Any],
    broken: Sequence[Any],
    make: Callable[[int, Any], TeacherRequest],
    yes: str | None,
    default: float,
) -> Calibration:
    """Ask the judge about the good and broken examples (stage `calibrate_<stage>` in the stats)."""
    # Per side: enough to place a cut, few enough to stay cheap on a CPU teacher.
    most = runner.settings.calibration_examples  # requests_needed counts these for --dry-run
    good, broken = list(good)[:most], list(broken)[:most]
    examples = good + broken
    # Request indexes past any real row's: the seeds of these requests never collide with the stage's.
    requests = [make(100_000 + i, row) for i, row in enumerate(examples)]
    responses = await runner.run(f"calibrate_{stage}", requests)
    values = [verdict_value(r, yes) for r in responses]
    g = [v for v in values[: len(good)] if v is not None]
    b = [v for v in values[len(good):] if v is not None]
    return fit(stage, g, b, min_auc=runner.settings.judge_min_auc, default=default)


def off_topic_questions() -> list[str]:
    data = yaml.safe_load(OFF_TOPIC.read_text(encoding="utf-8"))
    return [str(q) for q in data["questions"]]


def pick_off_topic(topic_text: str, index: int) -> str:
    """An off-topic question for the leaf: from the shipped pool, those sharing the fewest words with
    the leaf's task and seeds, taken in turn."""
    words = set(topic_text.lower().split())
    pool = off_topic_questions()
    ranked = sorted(pool, key=lambda q: (len(words & set(q.lower().split())), q))
    far = ranked[: max(3, len(ranked) // 2)]
    return far[index % len(far)]


def rotate(items: Sequence[Any], by: int = 1) -> list[Any]:
    """items shifted by `by`: pairs each item with another one's (a seed with another seed's answer)."""
    if not items:
        return []
    k = by % len(items)
    return list(items[k:]) + list(items[:k])


def dependent(question: str) -> str:
    """A copy of a question that no longer stands alone (it points at a passage the reader never saw)."""
    q = question.strip()
    return f"According to the passage above, {q[:1].lower()}{q[1:]}" if q else "What does the text above say?"


def calibration_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """Each judge's per-leaf calibration without its example values (what the manifest records)."""
    return {stage: {k: c.get(k) for k in ("status", "auc", "threshold")}
            for stage, c in (stats.get("calibration") or {}).items()}


def calibration_text(stats: dict[str, Any]) -> str:
    """'; judges: faithful calibrated (AUC 0.92, cut 0.41), standalone unusable (AUC 0.55)' or ''."""
    parts = []
    for stage, c in sorted((stats.get("calibration") or {}).items()):
        if c.get("status") in ("calibrated", "unusable", "default"):
            detail = [f"AUC {c['auc']:.2f}"] if c.get("auc") is not None else []
            if c.get("threshold") is not None:
                detail.append(f"cut {c['threshold']:.3f}")
            parts.append(f"{stage} {c['status']}" + (f" ({', '.join(detail)})" if detail else ""))
    return f"; judges: {', '.join(parts)}" if parts else ""
