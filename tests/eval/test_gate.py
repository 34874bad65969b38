"""The regression definition and the per-leaf decisions."""

from __future__ import annotations

import math

import pytest

from labtax.eval.gate import Thresholds, decide, nll_change_pct


def test_change_is_relative_change_of_the_nll() -> None:
    assert nll_change_pct(-2.0, -1.8) == pytest.approx(-10.0)  # NLL 2.0 -> 1.8: 10 % better
    assert nll_change_pct(-2.0, -2.2) == pytest.approx(10.0)
    assert nll_change_pct(-3.0, -3.0) == 0.0
    assert math.isinf(nll_change_pct(0.0, -0.1))


@pytest.mark.parametrize(
    ("changed", "change", "thresholds", "expected"),
    [
        (True, -0.01, Thresholds(), ("improved", True)),
        (True, 0.0, Thresholds(), ("not_improved", False)),  # equal is not an improvement
        (True, 3.0, Thresholds(), ("not_improved", False)),
        (True, -1.0, Thresholds(min_improvement_pct=2.0), ("not_improved", False)),
        (True, -2.5, Thresholds(min_improvement_pct=2.0), ("improved", True)),
        (False, 5.0, Thresholds(), ("stable", True)),  # exactly at the threshold passes
        (False, 5.01, Thresholds(), ("regressed", False)),
        (False, -40.0, Thresholds(), ("stable", True)),
        (False, 1.0, Thresholds(fail_on_regression_pct=0.5), ("regressed", False)),
        (True, None, Thresholds(), ("no_data", True)),
    ],
)
def test_decide(changed: bool, change: float | None, thresholds: Thresholds, expected: tuple[str, bool]) -> None:
    assert decide(changed, change, thresholds) == expected
