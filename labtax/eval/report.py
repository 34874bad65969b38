"""Builds the `labtax eval` report (labtax/eval/record.py: the typed records, their JSON) from the
selection and both models' measurements, in named steps: the likelihood change per leaf, each leaf's
paired items, the control leaves, one row per leaf (evidence, verdict, the gate), then the totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labtax.eval.data import SelectedLeaf, Selection
from labtax.eval.evidence import (
    IMPROVED,
    NO_CHANGE,
    REGRESSED,
    Controls,
    LeafEvidence,
    LeafItems,
    leaf_evidence,
)
from labtax.eval.gate import IMPROVED as GATE_IMPROVED
from labtax.eval.gate import NO_DATA, NOT_IMPROVED, STABLE, decide, nll_change_pct
from labtax.eval.gate import REGRESSED as GATE_REGRESSED
from labtax.eval.judge import PairTally
from labtax.eval.record import (
    SCHEMA,
    ControlsInfo,
    EvalReport,
    HeldOut,
    ItemCounts,
    JudgeCell,
    JudgeSummary,
    LeafRow,
    ModelRef,
    SelectionInfo,
    Summary,
    ThresholdsInfo,
)
from labtax.eval.scorer import ExampleScore, LeafScore
from labtax.eval.stats import PairedLikelihood
from labtax.models import model_id

if TYPE_CHECKING:
    from labtax.eval.run import EvalOptions

__all__ = ["SCHEMA", "EvalReport", "ModelResult", "build_report"]

METRIC = {
    "score": "mean per-token log-likelihood of the reference answer, nats (<= 0, higher is better)",
    "change_pct": "100 * (NLL_candidate - NLL_base) / NLL_base, NLL = -score (negative is better)",
    "interval": "95% paired bootstrap (items resampled, 2000 resamples, percentile)",
    "closed_book": "held-out wordings asked with no context, greedy answer: right when it holds every "
                   "key fact (number, date, name) of the reference beyond the question's",
    "choices": "closed-book multiple choice: the option with the highest mean per-token log-likelihood",
    "beyond_controls_pct": "change_pct minus the mean change_pct of the unchanged (control) leaves",
}
SHOWN_WHICH = "seed examples a generation prompt rendered; generated multiple-choice items never are"
JUDGE_MODE = "pairwise, both orders, against the reference"

Recall = dict[str, tuple[list[bool | None], ...]]  # leaf -> (base, candidate) closed-book rights, None unscored


@dataclass
class ModelResult:
    """One model's measurements: per leaf the likelihood of its reference answers (summed, and per
    item), the option chosen on each multiple-choice item, and greedy answers for the judge."""

    scores: dict[str, LeafScore]
    items: dict[str, list[ExampleScore]] | None = None
    picks: dict[str, list[int]] | None = None
    answers: dict[str, list[str]] | None = None
    recall_answers: dict[str, list[str]] | None = None  # greedy answers to the closed-book items


def _finite(value: float | None) -> float | None:
    """JSON has no infinities or NaN: a non-finite number is written as null."""
    return value if value is not None and math.isfinite(value) else None


def _leaf_items(leaf: str, selection: Selection, base: ModelResult, cand: ModelResult,
                pairs: dict[str, PairTally] | None,
                recall: dict[str, tuple[list[bool | None], ...]] | None = None) -> LeafItems:
    items = LeafItems()
    if recall and leaf in recall:
        b_ok, c_ok = recall[leaf]
        # Paired: an item counts only when both answers were scored (key facts, or the judge).
        both = [(b, c) for b, c in zip(b_ok, c_ok) if b is not None and c is not None]
        items.base_recalled = [bool(b) for b, _ in both]
        items.cand_recalled = [bool(c) for _, c in both]
        items.recall_unscored = len(b_ok) - len(both)
    b_items, c_items = (base.items or {}).get(leaf), (cand.items or {}).get(leaf)
    if b_items and c_items and len(b_items) == len(c_items):
        items.likelihood = PairedLikelihood.of([(s.logprob, s.tokens) for s in b_items],
                                               [(s.logprob, s.tokens) for s in c_items])
    mcs = [ex for ex in selection.examples.get(leaf, []) if ex.is_choice]
    b_picks, c_picks = (base.picks or {}).get(leaf, []), (cand.picks or {}).get(leaf, [])
    if mcs and len(b_picks) == len(mcs) == len(c_picks):
        items.base_correct = [p == ex.answer_index for p, ex in zip(b_picks, mcs)]
        items.cand_correct = [p == ex.answer_index for p, ex in zip(c_picks, mcs)]
    if pairs and leaf in pairs:
        items.pairwise = pairs[leaf].readable
    return items


def _judge_cell(t: PairTally, ev: LeafEvidence) -> JudgeCell:
    readable = t.readable
    return JudgeCell(questions=len(t.scores), rated=len(readable),
                     win_rate=sum(readable) / len(readable) if readable else None, wins=t.wins, ties=t.ties,
                     losses=t.losses, malformed=t.malformed, failed=t.failed,
                     interval=ev.pairwise.win_rate if ev.pairwise is not None else None)


def likelihood_changes(selection: Selection, base: ModelResult, candidate: ModelResult) -> dict[str, float | None]:
    """Per leaf, the relative change of the per-token NLL (None where a model scored no token)."""
    changes: dict[str, float | None] = {}
    for chosen in selection.leaves:
        b, c = base.scores.get(chosen.leaf), candidate.scores.get(chosen.leaf)
        ok = b is not None and c is not None and b.tokens > 0 and c.tokens > 0
        changes[chosen.leaf] = nll_change_pct(b.mean_logprob, c.mean_logprob) if ok and b and c else None
    return changes


@dataclass(frozen=True)
class _Measured:
    """What one report is built from, gathered once: the models' results and the per-leaf changes."""

    options: EvalOptions
    selection: Selection
    base: ModelResult
    candidate: ModelResult
    changes: dict[str, float | None]
    pairs: dict[str, PairTally] | None


def _row(m: _Measured, chosen: SelectedLeaf, items: LeafItems, controls: Controls) -> LeafRow:
    """One leaf's row: its evidence and verdict, and the gate's status."""
    leaf = chosen.leaf
    b, c = m.base.scores.get(leaf), m.candidate.scores.get(leaf)
    change = _finite(m.changes[leaf])
    has_lk = m.changes[leaf] is not None
    exs = m.selection.examples.get(leaf, [])
    floor = m.options.noise_floor
    ev = leaf_evidence(leaf, chosen.changed, items, change, controls, m.options.thresholds,
                       judged=m.pairs is not None and leaf in m.pairs, seed=m.options.seed,
                       seed_noise=floor.change_pct.get(leaf) if floor is not None else None)
    has_data = has_lk or ev.choices is not None or ev.pairwise is not None or ev.closed_book is not None
    status, passed = decide(chosen.changed, ev.verdict if has_data else None)
    tally = m.pairs.get(leaf) if m.pairs is not None else None
    return LeafRow(
        leaf=leaf, changed=chosen.changed, examples=len(exs), tokens=c.tokens if c else 0,
        base=_finite(b.mean_logprob) if has_lk and b else None,
        candidate=_finite(c.mean_logprob) if has_lk and c else None,
        change_pct=change, status=status, passed=passed,
        judge=_judge_cell(tally, ev) if tally is not None else None,
        verdict=ev.verdict if has_data else NO_CHANGE, evidence=ev.evidence if has_data else "none",
        items=ItemCounts(reference=sum(1 for e in exs if not e.is_choice), choices=sum(1 for e in exs if e.is_choice),
                         shown_to_teacher=sum(1 for e in exs if e.shown_to_teacher),
                         closed_book=sum(1 for e in exs if e.closed_book)),
        closed_book=ev.closed_book, choices=ev.choices, likelihood=ev.likelihood)


def _rows(m: _Measured, recall: Recall | None) -> tuple[list[LeafRow], Controls]:
    """Every leaf's row, the changed ones measured against the unchanged (control) leaves."""
    leaves = m.selection.leaves
    items = {r.leaf: _leaf_items(r.leaf, m.selection, m.base, m.candidate, m.pairs, recall) for r in leaves}
    unchanged = [r.leaf for r in leaves if not r.changed]
    controls = Controls.build({leaf: items[leaf] for leaf in unchanged},
                              {leaf: _finite(m.changes[leaf]) for leaf in unchanged}, m.options.seed)
    return [_row(m, chosen, items[chosen.leaf], controls) for chosen in leaves], controls


def _judge_summary(options: EvalOptions, rows: list[LeafRow], judge_model: str | None) -> JudgeSummary | None:
    if options.judge is None:
        return None
    cells = [r.judge for r in rows if r.judge]
    return JudgeSummary(endpoints=tuple(options.judge.endpoints), teacher=options.judge.teacher,
                        model=judge_model or options.judge.model or "", max_new_tokens=options.judge.max_new_tokens,
                        mode=JUDGE_MODE, requests=2 * sum(j.questions for j in cells),
                        malformed=sum(j.malformed for j in cells), failed=sum(j.failed for j in cells))


def _held_out(rows: list[LeafRow]) -> HeldOut:
    shown = tuple(f"{r.leaf} ({r.items.shown_to_teacher})" for r in rows if r.items.shown_to_teacher)
    return HeldOut(items=sum(r.examples for r in rows), shown_to_teacher=sum(r.items.shown_to_teacher for r in rows),
                   which=SHOWN_WHICH if shown else None, leaves=shown)


def _summary(rows: list[LeafRow]) -> Summary:
    statuses = [r.status for r in rows]
    return Summary(leaves=len(rows), changed=sum(1 for r in rows if r.changed),
                   unchanged=sum(1 for r in rows if not r.changed), examples=sum(r.examples for r in rows),
                   failed=sum(1 for r in rows if not r.passed), improved=statuses.count(GATE_IMPROVED),
                   not_improved=statuses.count(NOT_IMPROVED), stable=statuses.count(STABLE),
                   regressed=statuses.count(GATE_REGRESSED), no_data=statuses.count(NO_DATA))


def build_report(
    options: EvalOptions,
    selection: Selection,
    base: ModelResult,
    candidate: ModelResult,
    *,
    judge_model: str | None = None,
    pairs: dict[str, PairTally] | None = None,
    recall: Recall | None = None,
) -> EvalReport:
    measured = _Measured(options, selection, base, candidate, likelihood_changes(selection, base, candidate), pairs)
    rows, controls = _rows(measured, recall)
    summary = _summary(rows)
    # Per-token scores of two models compare fairly only when both count the same tokens.
    same_tokens = all(base.scores[leaf].tokens == candidate.scores[leaf].tokens
                      for leaf in base.scores.keys() & candidate.scores.keys())
    return EvalReport(
        schema=SCHEMA,
        # No changed leaf: nothing was learned to check, so no "pass" on nothing (forgetting still fails).
        verdict="fail" if summary.failed else ("pass" if summary.changed else "nothing-changed"),
        exit_code=1 if summary.failed else 0,
        base=ModelRef(options.base, model_id(options.base)),
        candidate=ModelRef(options.candidate, model_id(options.candidate)),
        data=str(options.data_dir),
        metric=METRIC,
        selection=SelectionInfo(selection.mode, selection.sample_unchanged, selection.seed, selection.manifest),
        thresholds=ThresholdsInfo(options.thresholds.fail_on_regression_pct, options.thresholds.min_improvement_pct,
                                  options.noise_floor.source if options.noise_floor is not None else None),
        judge=_judge_summary(options, rows, judge_model),
        same_tokenization=same_tokens,
        controls=ControlsInfo(controls.leaves, _finite(controls.point)),
        held_out=_held_out(rows),
        no_changed_leaves=summary.changed == 0,
        leaves=tuple(rows),
        verdicts={v: sum(1 for r in rows if r.verdict == v) for v in (IMPROVED, NO_CHANGE, REGRESSED)},
        summary=summary,
    )
