"""The per-leaf gate: each leaf's status and whether it passes, from its verdict.

The verdict (`evidence.leaf_evidence`: improved, no-change or regressed, on the leaf's strongest
evidence) is what was measured; the gate turns it into the outcome:

  changed leaf    passes when its verdict is `improved` (status improved, else not_improved)
  unchanged leaf  passes unless its verdict is `regressed` (status stable, else regressed)
  a leaf without held-out items passes and is reported as `no_data`.

The likelihood change the evidence weighs is the relative change of the mean per-token negative
log-likelihood (NLL, in nats; the log-likelihoods themselves are negative):

    change_pct = 100 * (NLL_candidate - NLL_base) / NLL_base

Negative is better (the candidate finds the reference answers more likely). For example base NLL
2.00, candidate 1.80: change -10 %. The thresholds: a changed leaf's likelihood evidence must be
below -min_improvement_pct, an unchanged leaf above fail_on_regression_pct regresses.
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
STATUSES = (IMPROVED, NOT_IMPROVED, STABLE, REGRESSED, NO_DATA)


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


def decide(changed: bool, verdict: str | None) -> tuple[str, bool]:
    """(status, passed) of one leaf from its verdict (None: the leaf has no held-out items). The
    verdicts `improved` and `regressed` are spelled as the statuses of the same name."""
    if verdict is None:
        return NO_DATA, True
    if changed:
        return (IMPROVED, True) if verdict == IMPROVED else (NOT_IMPROVED, False)
    return (REGRESSED, False) if verdict == REGRESSED else (STABLE, True)
