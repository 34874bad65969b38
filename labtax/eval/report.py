"""The `labtax eval` report: one plain, JSON-ready dict (the stable `--format json` document).

Each leaf row keeps the likelihood columns (`base`, `candidate`, `change_pct`: mean per-token
log-likelihood of the reference answers) and adds the evidence: `closed_book` (held-out wordings of
knowledge facts answered with no context, scored by their key facts), `choices` (closed-book accuracy),
`judge` (pairwise win rate), `likelihood` (the change with its 95 % paired bootstrap interval, and
beyond the controls), the `verdict` (improved | no-change | regressed) and the `evidence` it rests on.
`status`/`passed` are the gate's outcome per leaf: a changed leaf passes when its verdict is
`improved`, an unchanged one unless it is `regressed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labtax.eval.data import Selection
from labtax.eval.evidence import IMPROVED, NO_CHANGE, REGRESSED, Controls, LeafItems, leaf_evidence
from labtax.eval.gate import STATUSES, decide, nll_change_pct
from labtax.eval.judge import PairTally
from labtax.eval.scorer import ExampleScore, LeafScore
from labtax.eval.stats import PairedLikelihood
from labtax.models import model_id

if TYPE_CHECKING:
    from labtax.eval.run import EvalOptions

SCHEMA = "labtax.eval/1"


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


def _judge_cell(t: PairTally | None) -> dict[str, Any] | None:
    if t is None:
        return None
    readable = t.readable
    return {"questions": len(t.scores), "rated": len(readable),
            "win_rate": sum(readable) / len(readable) if readable else None,
            "wins": t.wins, "ties": t.ties, "losses": t.losses, "malformed": t.malformed, "failed": t.failed}


def build_report(
    options: EvalOptions,
    selection: Selection,
    base: ModelResult,
    candidate: ModelResult,
    *,
    judge_model: str | None = None,
    pairs: dict[str, PairTally] | None = None,
    recall: dict[str, tuple[list[bool | None], ...]] | None = None,
) -> dict[str, Any]:
    changes: dict[str, float | None] = {}
    for chosen in selection.leaves:
        b, c = base.scores.get(chosen.leaf), candidate.scores.get(chosen.leaf)
        ok = b is not None and c is not None and b.tokens > 0 and c.tokens > 0
        changes[chosen.leaf] = nll_change_pct(b.mean_logprob, c.mean_logprob) if ok and b and c else None
    items = {r.leaf: _leaf_items(r.leaf, selection, base, candidate, pairs, recall) for r in selection.leaves}
    unchanged = [r.leaf for r in selection.leaves if not r.changed]
    controls = Controls.build({leaf: items[leaf] for leaf in unchanged},
                              {leaf: _finite(changes[leaf]) for leaf in unchanged}, options.seed)
    rows: list[dict[str, Any]] = []
    for chosen in selection.leaves:
        leaf, b, c = chosen.leaf, base.scores.get(chosen.leaf), candidate.scores.get(chosen.leaf)
        has_lk = changes[leaf] is not None
        exs = selection.examples.get(leaf, [])
        ev = leaf_evidence(leaf, chosen.changed, items[leaf], _finite(changes[leaf]), controls,
                           options.thresholds, judged=pairs is not None and leaf in pairs, seed=options.seed)
        has_data = has_lk or ev["choices"] is not None or ev["pairwise"] is not None or ev["closed_book"] is not None
        status, passed = decide(chosen.changed, ev["verdict"] if has_data else None)
        judged = _judge_cell(pairs.get(leaf)) if pairs is not None else None
        if judged is not None and ev["pairwise"] is not None:
            judged["interval"] = ev["pairwise"]["win_rate"]
        rows.append({
            "leaf": leaf,
            "changed": chosen.changed,
            "examples": len(exs),
            "tokens": c.tokens if c else 0,
            "base": _finite(b.mean_logprob) if has_lk and b else None,
            "candidate": _finite(c.mean_logprob) if has_lk and c else None,
            "change_pct": _finite(changes[leaf]),
            "status": status,
            "passed": passed,
            "judge": judged,
            "verdict": ev["verdict"] if has_data else NO_CHANGE,
            "evidence": ev["evidence"] if has_data else "none",
            "items": {"reference": sum(1 for e in exs if not e.is_choice),
                      "choices": sum(1 for e in exs if e.is_choice),
                      "shown_to_teacher": sum(1 for e in exs if e.shown_to_teacher),
                      "closed_book": sum(1 for e in exs if e.closed_book)},
            "closed_book": ev["closed_book"],
            "choices": ev["choices"],
            "likelihood": ev["likelihood"],
        })
    # Per-token scores of two models compare fairly only when both count the same tokens.
    same_tokens = all(
        base.scores[leaf].tokens == candidate.scores[leaf].tokens
        for leaf in base.scores.keys() & candidate.scores.keys()
    )
    failed = [r for r in rows if not r["passed"]]
    statuses = [r["status"] for r in rows]
    judge_summary = None
    if options.judge is not None:
        cells = [r["judge"] for r in rows if r["judge"]]
        judge_summary = {
            "endpoints": list(options.judge.endpoints),
            "teacher": options.judge.teacher,
            "model": judge_model or options.judge.model or "",
            "max_new_tokens": options.judge.max_new_tokens,
            "mode": "pairwise, both orders, against the reference",
            "requests": 2 * sum(j["questions"] for j in cells),
            "malformed": sum(j["malformed"] for j in cells),
            "failed": sum(j["failed"] for j in cells),
        }
    shown = [f"{r['leaf']} ({r['items']['shown_to_teacher']})" for r in rows if r["items"]["shown_to_teacher"]]
    n_changed = sum(1 for r in rows if r["changed"])
    return {
        "schema": SCHEMA,
        # No changed leaf: nothing was learned to check, so no "pass" on nothing (forgetting still fails).
        "verdict": "fail" if failed else ("pass" if n_changed else "nothing-changed"),
        "exit_code": 1 if failed else 0,
        "base": {"model": options.base, "id": model_id(options.base)},
        "candidate": {"model": options.candidate, "id": model_id(options.candidate)},
        "data": str(options.data_dir),
        "metric": {
            "score": "mean per-token log-likelihood of the reference answer, nats (<= 0, higher is better)",
            "change_pct": "100 * (NLL_candidate - NLL_base) / NLL_base, NLL = -score (negative is better)",
            "interval": "95% paired bootstrap (items resampled, 2000 resamples, percentile)",
            "closed_book": "held-out wordings asked with no context, greedy answer: right when it holds every "
                           "key fact (number, date, name) of the reference beyond the question's",
            "choices": "closed-book multiple choice: the option with the highest mean per-token log-likelihood",
            "beyond_controls_pct": "change_pct minus the mean change_pct of the unchanged (control) leaves",
        },
        "selection": {
            "leaves": selection.mode,
            "sample_unchanged": selection.sample_unchanged,
            "seed": selection.seed,
            "manifest": selection.manifest,
        },
        "thresholds": {
            "fail_on_regression_pct": options.thresholds.fail_on_regression_pct,
            "min_improvement_pct": options.thresholds.min_improvement_pct,
        },
        "judge": judge_summary,
        "same_tokenization": same_tokens,
        "controls": {"leaves": controls.leaves, "change_pct": _finite(controls.point)},
        "held_out": {
            "items": sum(r["examples"] for r in rows),
            "shown_to_teacher": sum(r["items"]["shown_to_teacher"] for r in rows),
            "which": "seed examples a generation prompt rendered; generated multiple-choice items never are" if shown else None,
            "leaves": shown,
        },
        "no_changed_leaves": n_changed == 0,
        "leaves": rows,
        "verdicts": {v: sum(1 for r in rows if r["verdict"] == v) for v in (IMPROVED, NO_CHANGE, REGRESSED)},
        "summary": {
            "leaves": len(rows),
            "changed": n_changed,
            "unchanged": sum(1 for r in rows if not r["changed"]),
            "examples": sum(r["examples"] for r in rows),
            "failed": len(failed),
            **{s: statuses.count(s) for s in STATUSES},
        },
    }


def failed_leaves(report: dict[str, Any]) -> Sequence[str]:
    return [r["leaf"] for r in report["leaves"] if not r["passed"]]
