"""The paired bootstrap and the controls, on numbers with known answers."""

from __future__ import annotations

import math

from labtax.eval.evidence import Controls, LeafItems, leaf_evidence
from labtax.eval.gate import Thresholds
from labtax.eval.stats import PairedLikelihood, accuracy_change, likelihood_change, rng_for, win_rate


def _paired(base_nll: list[float], cand_nll: list[float], tokens: int = 10) -> PairedLikelihood:
    return PairedLikelihood.of([(-b * tokens, tokens) for b in base_nll], [(-c * tokens, tokens) for c in cand_nll])


def test_a_consistent_change_has_a_tight_interval_and_noise_a_wide_one() -> None:
    steady = likelihood_change(_paired([2.0] * 8, [1.8] * 8), rng_for("a"))
    assert math.isclose(steady.estimate, -10.0) and math.isclose(steady.low, -10.0) and math.isclose(steady.high, -10.0)
    noisy = likelihood_change(_paired([2.0] * 8, [1.2, 2.8, 1.4, 2.6, 1.6, 2.4, 1.9, 2.1]), rng_for("a"))
    assert noisy.low < 0 < noisy.high and abs(noisy.estimate) < 1e-9


def test_the_interval_is_paired() -> None:
    # Items of very different difficulty, each 10 % easier for the candidate: pairing removes the spread.
    base = [0.5, 1.0, 4.0, 8.0, 2.0, 6.0]
    iv = likelihood_change(_paired(base, [0.9 * b for b in base]), rng_for("p"))
    assert math.isclose(iv.low, -10.0) and math.isclose(iv.high, -10.0)


def test_one_item_has_no_interval() -> None:
    iv = likelihood_change(_paired([2.0], [1.0]), rng_for("one"))
    assert iv.estimate == -50.0 and math.isnan(iv.low) and iv.as_dict()["low"] is None
    acc = accuracy_change([False], [True], rng_for("one"))
    assert acc.estimate == 1.0 and math.isnan(acc.high)


def test_accuracy_and_win_rate() -> None:
    acc = accuracy_change([False] * 10, [True] * 9 + [False], rng_for("x"))
    assert math.isclose(acc.estimate, 0.9) and acc.low > 0.5
    wins = win_rate([1.0, 0.5, 1.0, 0.0, 1.0, 1.0], rng_for("w"))
    assert math.isclose(wins.estimate, 0.75) and wins.low < 0.75 < wins.high <= 1.0


def test_a_change_every_leaf_shares_is_not_learning() -> None:
    shared = [2.0] * 6, [1.6] * 6  # -20 % on every leaf: the answer style was learned
    controls = {f"c{i}": LeafItems(likelihood=_paired(*shared)) for i in range(3)}
    pool = Controls.build(controls, {}, seed=0)
    assert pool.leaves == 3 and math.isclose(pool.point or 0, -20.0)
    style = leaf_evidence("leaf", True, LeafItems(likelihood=_paired(*shared)), None, pool, Thresholds(),
                          judged=False)
    assert style.verdict == "no-change" and style.evidence == "likelihood"
    assert style.likelihood.change_pct.estimate < -19  # the old metric: "improved by 20 %"
    learned = leaf_evidence("leaf", True, LeafItems(likelihood=_paired([2.0] * 6, [1.0] * 6)), None, pool,
                            Thresholds(), judged=False)
    assert learned.verdict == "improved" and learned.likelihood.beyond_controls_pct.high < 0


def test_choices_outrank_likelihood_and_an_unchanged_leaf_can_regress() -> None:
    pool = Controls(leaves=0, point=None)
    items = LeafItems(likelihood=_paired([2.0] * 4, [1.0] * 4), base_correct=[True] * 6, cand_correct=[True] * 6)
    row = leaf_evidence("k", True, items, None, pool, Thresholds(), judged=False)
    assert row.evidence == "choices" and row.verdict == "no-change"  # likelihood up, facts not
    forgot = LeafItems(base_correct=[True] * 8, cand_correct=[False] * 8)
    assert leaf_evidence("u", False, forgot, None, pool, Thresholds(), judged=False).verdict == "regressed"
    drift = leaf_evidence("u", False, LeafItems(likelihood=_paired([2.0] * 4, [2.2] * 4)), None, pool,
                          Thresholds(fail_on_regression_pct=5.0), judged=False)
    assert drift.verdict == "regressed" and drift.evidence == "likelihood"
