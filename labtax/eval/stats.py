"""Paired bootstrap intervals for the per-leaf changes.

Every measure is paired: base and candidate are scored on the same items, so an interval comes from
resampling the items (with replacement) and recomputing the change on both models at once. Resampling
is done with multinomial count vectors (R x n), so R = 2,000 resamples of a leaf cost one matrix
product, not 2,000 Python loops. The generator is seeded per leaf, so a report is reproducible.

  likelihood_change  token-weighted relative change (%) of the per-token NLL (negative is better)
  beyond_controls    that change minus the mean change of the control (unchanged) leaves, each control
                     leaf resampled within itself, independently of the leaf (a shared change of
                     style moves both and cancels out)
  accuracy_change    multiple-choice accuracy, candidate minus base (fraction of items)
  win_rate           the candidate's pairwise win rate against the base (ties count half)

The interval is the 2.5th-97.5th percentile of the resampled statistic (a percentile bootstrap).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        def f(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {"estimate": f(self.estimate), "low": f(self.low), "high": f(self.high)}

    def above(self, value: float) -> bool:
        return self.low > value

    def below(self, value: float) -> bool:
        return self.high < value


@dataclass(frozen=True)
class PairedLikelihood:
    """Per item: the base's and the candidate's summed answer log-probabilities and token counts."""

    base_logprob: np.ndarray
    base_tokens: np.ndarray
    cand_logprob: np.ndarray
    cand_tokens: np.ndarray

    @classmethod
    def of(cls, base: Sequence[tuple[float, int]], cand: Sequence[tuple[float, int]]) -> PairedLikelihood:
        b = np.asarray(base, dtype=np.float64).reshape(-1, 2)
        c = np.asarray(cand, dtype=np.float64).reshape(-1, 2)
        return cls(b[:, 0], b[:, 1], c[:, 0], c[:, 1])

    def __len__(self) -> int:
        return int(self.base_logprob.shape[0])


def rng_for(label: str, seed: int = 0) -> np.random.Generator:
    """A generator seeded from a string (a leaf path): stable across runs and processes."""
    return np.random.default_rng(int(hashlib.sha256(f"{seed}|{label}".encode()).hexdigest()[:16], 16))


def _weights(n: int, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples x n) counts: how often each item is drawn in each resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _percentile(values: np.ndarray, n: int) -> tuple[float, float]:
    """The interval's bounds; NaN (no interval) for fewer than two items, where every resample is
    the one item again and a zero-width interval would claim a certainty there is none of."""
    values = values[np.isfinite(values)]
    if values.size == 0 or n < 2:
        return math.nan, math.nan
    lo, hi = np.quantile(values, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(lo), float(hi)


def _change(b_lp: np.ndarray, b_tok: np.ndarray, c_lp: np.ndarray, c_tok: np.ndarray) -> np.ndarray:
    """100 * (NLL_c - NLL_b) / NLL_b for arrays of summed log-probabilities and token counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        base_nll = -b_lp / b_tok
        cand_nll = -c_lp / c_tok
        return np.asarray(100.0 * (cand_nll - base_nll) / base_nll)


def _likelihood_samples(p: PairedLikelihood, rng: np.random.Generator, resamples: int) -> np.ndarray:
    w = _weights(len(p), rng, resamples)
    return _change(w @ p.base_logprob, w @ p.base_tokens, w @ p.cand_logprob, w @ p.cand_tokens)


def _point(p: PairedLikelihood) -> float:
    return float(_change(p.base_logprob.sum(), p.base_tokens.sum(), p.cand_logprob.sum(), p.cand_tokens.sum()))


def likelihood_change(p: PairedLikelihood, rng: np.random.Generator, resamples: int = RESAMPLES) -> Interval:
    return Interval(_point(p), *_percentile(_likelihood_samples(p, rng, resamples), len(p)))


def controls_change(controls: Sequence[PairedLikelihood], rng: np.random.Generator,
                    resamples: int = RESAMPLES) -> tuple[float, np.ndarray]:
    """The mean change of the control leaves (each weighs the same) and its resamples."""
    points = [_point(c) for c in controls]
    samples = np.mean([_likelihood_samples(c, rng, resamples) for c in controls], axis=0)
    return float(np.mean(points)), samples


def beyond_controls(p: PairedLikelihood, control_point: float, control_samples: np.ndarray,
                    rng: np.random.Generator, resamples: int = RESAMPLES) -> Interval:
    """The leaf's change minus the controls' change, with a bootstrap interval."""
    own = _likelihood_samples(p, rng, resamples)
    return Interval(_point(p) - control_point, *_percentile(own - control_samples, len(p)))


def accuracy_change(base_correct: Sequence[bool], cand_correct: Sequence[bool], rng: np.random.Generator,
                    resamples: int = RESAMPLES) -> Interval:
    diff = np.asarray(cand_correct, dtype=np.float64) - np.asarray(base_correct, dtype=np.float64)
    w = _weights(diff.shape[0], rng, resamples)
    return Interval(float(diff.mean()), *_percentile(w @ diff / diff.shape[0], diff.shape[0]))


def win_rate(item_scores: Sequence[float], rng: np.random.Generator, resamples: int = RESAMPLES) -> Interval:
    """Mean of per-item scores in [0, 1] (1: the candidate won, 0.5: a tie, 0: the base won)."""
    s = np.asarray(item_scores, dtype=np.float64)
    w = _weights(s.shape[0], rng, resamples)
    return Interval(float(s.mean()), *_percentile(w @ s / s.shape[0], s.shape[0]))
