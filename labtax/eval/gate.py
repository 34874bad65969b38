"""The per-leaf gate: compare a candidate's score with its base's and decide pass or fail.

The change of a leaf is the relative change of its mean per-token negative log-likelihood (NLL, in
nats; the log-likelihoods themselves are negative):

    change_pct = 100 * (NLL_candidate - NLL_base) / NLL_base

Negative is better (the candidate finds the reference answers more likely), positive is worse. For
example base NLL 2.00, candidate 1.80: change -10 %. (In perplexity terms the ratio is
exp(NLL_candidate - NLL_base); the NLL change is used because it is linear in the log-likelihood.)

  changed leaf    passes when change_pct < -min_improvement_pct   (default 0: any strict improvement)
  unchanged leaf  passes when change_pct <= fail_on_regression_pct (default 5: at most 5 % worse)
  a leaf without held-out examples passes and is reported as `no_data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_REGRESSION_PCT = 5.0
DEFAULT_MIN_IMPROVEMENT_PCT = 0.0

IMPROVED = "improved"
NOT_IMPROVED = "not_improved"
STABLE = "stable"
REGRESSED = "regressed"
NO_DATA = "no_data"


@dataclass(frozen=True)
class Thresholds:
    fail_on_regression_pct: float = DEFAULT_REGRESSION_PCT
    min_improvement_pct: float = DEFAULT_MIN_IMPROVEMENT_PCT


def nll_change_pct(base_logprob: float, candidate_logprob: float) -> float:
    """Relative change (%) of the mean per-token NLL from base to candidate; negative is better."""
    base_nll, cand_nll = -base_logprob, -candidate_logprob
    if base_nll == cand_nll:
        return 0.0
    if base_nll <= 0.0:  # a base that is certain of every token: any loss is an infinite regression
        return math.inf if cand_nll > base_nll else -100.0
    return 100.0 * (cand_nll - base_nll) / base_nll


def decide(changed: bool, change_pct: float | None, thresholds: Thresholds) -> tuple[str, bool]:
    """(status, passed) of one leaf."""
    if change_pct is None:
        return NO_DATA, True
    if changed:
        ok = change_pct < -thresholds.min_improvement_pct
        return (IMPROVED, True) if ok else (NOT_IMPROVED, False)
    ok = change_pct <= thresholds.fail_on_regression_pct
    return (STABLE, True) if ok else (REGRESSED, False)
