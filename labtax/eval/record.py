"""The `labtax eval` report as typed, frozen records: what `eval/report.py` builds and the renderers
(`labtax/report/eval.py`, `eval/plot.py`) read by attribute. `to_json` is the stable `--format
json` document (schema `labtax.eval/1`, keys in this order); `from_json` reads one back. Nothing
here imports a model library or numpy, so the renderers stay light.

Each leaf row keeps the likelihood columns (`base`, `candidate`, `change_pct`: mean per-token
log-likelihood of the reference answers) and adds the evidence: `closed_book` (held-out wordings of
knowledge facts answered with no context, scored by their key facts), `choices` (closed-book
accuracy), `judge` (pairwise win rate), `likelihood` (the change with its 95 % paired bootstrap
interval, and beyond the controls), the `verdict` (improved | no-change | regressed) and the
`evidence` it rests on. `status`/`passed` are the gate's outcome per leaf: a changed leaf passes when
its verdict is `improved`, an unchanged one unless it is `regressed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = "labtax.eval/1"

Json = dict[str, Any]  # a JSON object as json.loads returns it: only at the edge, to_json/from_json


@dataclass(frozen=True)
class Interval:
    """A point and its 95 % interval; None where not finite (a point measured without items)."""

    estimate: float | None
    low: float | None
    high: float | None

    @classmethod
    def from_json(cls, d: Json | None) -> Interval | None:
        return None if d is None else cls(d["estimate"], d["low"], d["high"])


@dataclass(frozen=True)
class Accuracy:
    """Closed-book multiple choice (`choices`) of one leaf: both models' accuracy and the change."""

    items: int
    base_accuracy: float
    candidate_accuracy: float
    change: Interval

    @classmethod
    def from_json(cls, d: Json | None) -> Accuracy | None:
        return None if d is None else cls(d["items"], d["base_accuracy"], d["candidate_accuracy"],
                                          _interval(d["change"]))


@dataclass(frozen=True)
class ClosedBook:
    """Held-out wordings answered with no context; `unscored`: items neither key facts nor a judge scored."""

    items: int
    unscored: int
    base_accuracy: float
    candidate_accuracy: float
    change: Interval

    @classmethod
    def from_json(cls, d: Json | None) -> ClosedBook | None:
        return None if d is None else cls(d["items"], d["unscored"], d["base_accuracy"], d["candidate_accuracy"],
                                          _interval(d["change"]))


@dataclass(frozen=True)
class Likelihood:
    """The per-token NLL change and, for a changed leaf, the same beyond the control leaves' mean; for
    an unchanged leaf under a noise floor (eval/noise.py), the change the base's retrain made."""

    change_pct: Interval
    controls: int | None
    control_change_pct: float | None
    beyond_controls_pct: Interval | None
    seed_noise_pct: float | None = None

    @classmethod
    def from_json(cls, d: Json | None) -> Likelihood | None:
        return None if d is None else cls(_interval(d["change_pct"]), d["controls"], d["control_change_pct"],
                                          Interval.from_json(d["beyond_controls_pct"]), d.get("seed_noise_pct"))


@dataclass(frozen=True)
class Pairwise:
    """The judge's pairwise win rate over the judged items (evidence; the row shows it in `judge`)."""

    items: int
    win_rate: Interval


@dataclass(frozen=True)
class JudgeCell:
    """One leaf's pairwise judge tally; `interval` (of the win rate) when its items were rated."""

    questions: int
    rated: int
    win_rate: float | None
    wins: int
    ties: int
    losses: int
    malformed: int
    failed: int
    interval: Interval | None = None

    def to_json(self) -> Json:
        out = dataclasses.asdict(self)
        if self.interval is None:  # the document has the key only when there is an interval
            del out["interval"]
        return out

    @classmethod
    def from_json(cls, d: Json | None) -> JudgeCell | None:
        if d is None:
            return None
        return cls(d["questions"], d["rated"], d["win_rate"], d["wins"], d["ties"], d["losses"], d["malformed"],
                   d["failed"], Interval.from_json(d.get("interval")))


@dataclass(frozen=True)
class ItemCounts:
    """A leaf's held-out items by kind."""

    reference: int
    choices: int
    shown_to_teacher: int
    closed_book: int


@dataclass(frozen=True)
class LeafRow:
    leaf: str
    changed: bool
    examples: int
    tokens: int
    base: float | None  # mean per-token log-likelihood of the reference answers, nats
    candidate: float | None
    change_pct: float | None  # 100 * (NLL_candidate - NLL_base) / NLL_base
    status: str  # the gate's: improved | not_improved | stable | regressed | no_data
    passed: bool
    judge: JudgeCell | None
    verdict: str  # improved | no-change | regressed
    evidence: str  # closed_book | choices | judge | likelihood | none
    items: ItemCounts
    closed_book: ClosedBook | None
    choices: Accuracy | None
    likelihood: Likelihood | None

    def to_json(self) -> Json:
        out = dataclasses.asdict(self)
        out["judge"] = self.judge.to_json() if self.judge is not None else None
        return out

    @classmethod
    def from_json(cls, d: Json) -> LeafRow:
        return cls(d["leaf"], d["changed"], d["examples"], d["tokens"], d["base"], d["candidate"], d["change_pct"],
                   d["status"], d["passed"], JudgeCell.from_json(d["judge"]), d["verdict"], d["evidence"],
                   ItemCounts(**d["items"]), ClosedBook.from_json(d["closed_book"]),
                   Accuracy.from_json(d["choices"]), Likelihood.from_json(d["likelihood"]))


@dataclass(frozen=True)
class ModelRef:
    model: str  # as given: a checkpoint folder or a built-in name
    id: str  # labtax.models.model_id


@dataclass(frozen=True)
class SelectionInfo:
    leaves: str  # changed | all
    sample_unchanged: int | None  # None with --leaves all
    seed: int
    manifest: bool


@dataclass(frozen=True)
class ThresholdsInfo:
    fail_on_regression_pct: float
    min_improvement_pct: float
    noise_floor: str | None = None  # the report of the base against its retrain (--noise-floor)


@dataclass(frozen=True)
class JudgeSummary:
    endpoints: tuple[str, ...]
    teacher: str
    model: str
    max_new_tokens: int
    mode: str
    requests: int
    malformed: int
    failed: int


@dataclass(frozen=True)
class ControlsInfo:
    leaves: int
    change_pct: float | None


@dataclass(frozen=True)
class HeldOut:
    items: int
    shown_to_teacher: int
    which: str | None
    leaves: tuple[str, ...]  # "leaf (n)" of the leaves with items a generation prompt showed


@dataclass(frozen=True)
class Summary:
    leaves: int
    changed: int
    unchanged: int
    examples: int
    failed: int
    # The gate's statuses (labtax.eval.gate.STATUSES), counted.
    improved: int
    not_improved: int
    stable: int
    regressed: int
    no_data: int


@dataclass(frozen=True)
class EvalReport:
    schema: str
    verdict: str  # pass | fail | nothing-changed
    exit_code: int
    base: ModelRef
    candidate: ModelRef
    data: str
    metric: Mapping[str, str]  # what each measure means, in words (constant)
    selection: SelectionInfo
    thresholds: ThresholdsInfo
    judge: JudgeSummary | None
    same_tokenization: bool
    controls: ControlsInfo
    held_out: HeldOut
    no_changed_leaves: bool
    leaves: tuple[LeafRow, ...]
    verdicts: Mapping[str, int]  # improved / no-change / regressed -> leaves
    summary: Summary

    def to_json(self) -> Json:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("base", "candidate", "selection", "thresholds", "controls", "held_out", "summary"):
            out[name] = dataclasses.asdict(out[name])
        out["metric"], out["verdicts"] = dict(self.metric), dict(self.verdicts)
        out["judge"] = dataclasses.asdict(self.judge) if self.judge is not None else None
        if self.judge is not None:
            out["judge"]["endpoints"] = list(self.judge.endpoints)
        out["held_out"]["leaves"] = list(self.held_out.leaves)
        out["leaves"] = [r.to_json() for r in self.leaves]
        return out

    @classmethod
    def from_json(cls, d: Json) -> EvalReport:
        judge = d["judge"]
        held = d["held_out"]
        return cls(
            schema=d["schema"], verdict=d["verdict"], exit_code=d["exit_code"], base=ModelRef(**d["base"]),
            candidate=ModelRef(**d["candidate"]), data=d["data"], metric=dict(d["metric"]),
            selection=SelectionInfo(**d["selection"]), thresholds=ThresholdsInfo(**d["thresholds"]),
            judge=None if judge is None else JudgeSummary(**{**judge, "endpoints": tuple(judge["endpoints"])}),
            same_tokenization=d["same_tokenization"], controls=ControlsInfo(**d["controls"]),
            held_out=HeldOut(**{**held, "leaves": tuple(held["leaves"])}), no_changed_leaves=d["no_changed_leaves"],
            leaves=tuple(LeafRow.from_json(r) for r in d["leaves"]), verdicts=dict(d["verdicts"]),
            summary=Summary(**d["summary"]))


def _interval(d: Json) -> Interval:
    return Interval(d["estimate"], d["low"], d["high"])
