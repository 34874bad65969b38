"""The regression definition and the per-leaf decisions."""

from __future__ import annotations

import math

import pytest

from labtax.eval.gate import decide, nll_change_pct


def test_change_is_relative_change_of_the_nll() -> None:
    assert nll_change_pct(-2.0, -1.8) == pytest.approx(-10.0)  # NLL 2.0 -> 1.8: 10 % better
    assert nll_change_pct(-2.0, -2.2) == pytest.approx(10.0)
    assert nll_change_pct(-3.0, -3.0) == 0.0
    assert math.isinf(nll_change_pct(0.0, -0.1))


@pytest.mark.parametrize(
    ("changed", "verdict", "expected"),
    [
        (True, "improved", ("improved", True)),
        (True, "no-change", ("not_improved", False)),  # a changed leaf must have learned
        (True, "regressed", ("not_improved", False)),
        (False, "no-change", ("stable", True)),
        (False, "improved", ("stable", True)),
        (False, "regressed", ("regressed", False)),
        (True, None, ("no_data", True)),
        (False, None, ("no_data", True)),
    ],
)
def test_decide(changed: bool, verdict: str | None, expected: tuple[str, bool]) -> None:
    assert decide(changed, verdict) == expected
