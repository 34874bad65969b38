"""The seed-noise floor (eval/noise.py): reading it, and what it does to an unchanged leaf's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_render import _report

from labtax.errors import UsageError
from labtax.eval.evidence import Controls, LeafItems, leaf_evidence
from labtax.eval.gate import Thresholds
from labtax.eval.noise import NoiseFloor, check_same_base, load_noise_floor
from labtax.eval.run import EvalOptions
from labtax.report.eval import render_json, render_markdown, render_text


def _verdict(change: float, noise: float | None) -> str:
    return leaf_evidence("skills/x", False, LeafItems(), change, Controls(0, None), Thresholds(), judged=False,
                         seed_noise=noise).verdict


@pytest.mark.parametrize(("change", "noise", "verdict"), [
    (11.8, None, "regressed"),   # the gate alone: over 5 %
    (11.8, 13.2, "no-change"),   # a retrain moved the leaf further: within chance
    (9.0, -0.2, "regressed"),    # a retrain that did better does not widen the tolerance
    (9.0, 3.0, "regressed"),     # 9 > 5 + 3: worse than both by more than the tolerance
    (7.9, 3.0, "no-change"),
])
def test_an_unchanged_leaf_regresses_only_beyond_the_tolerance_plus_the_retrains_change(
        change: float, noise: float | None, verdict: str) -> None:
    assert _verdict(change, noise) == verdict


def test_a_changed_leaf_ignores_the_floor() -> None:
    ev = leaf_evidence("skills/x", True, LeafItems(), -10.0, Controls(0, None), Thresholds(), judged=False,
                       seed_noise=50.0)
    assert ev.verdict == "improved" and ev.likelihood and ev.likelihood.seed_noise_pct is None


def test_the_report_says_which_floor_and_each_leafs_noise(tmp_path: Path) -> None:
    plain = _report(judge=False)  # knowledge/d +10 %: regressed at the default 5 %
    floor_file = tmp_path / "noise.json"
    floor_file.write_text(render_json(plain))
    floor = load_noise_floor(floor_file)
    assert floor.base_id == plain.base.id and floor.change_pct["knowledge/d"] == pytest.approx(10.0)
    report = _report(judge=False, noise_floor=floor)
    rows = {r.leaf: r for r in report.leaves}
    assert rows["knowledge/d"].status == "stable" and report.verdict == "pass"
    assert rows["knowledge/d"].likelihood and rows["knowledge/d"].likelihood.seed_noise_pct == pytest.approx(10.0)
    assert report.thresholds.noise_floor == str(floor_file)
    text = render_text(report)
    assert "seed noise +10.0%" in text and text.rstrip().endswith("beyond the seed noise")
    assert "Seed noise: the change the base's retrain" in render_markdown(report)
    # Old reports (no floor) read back unchanged.
    assert json.loads(render_json(plain))["thresholds"]["noise_floor"] is None


@pytest.mark.parametrize(("content", "says"), [
    (None, "no such file"),
    ("{not json", "not JSON (line 1"),
    ('{"schema": "other/1"}', "not a labtax eval report"),
    ('{"schema": "labtax.eval/1", "leaves": []}', "a malformed eval report"),
])
def test_a_bad_floor_is_one_line(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "noise.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as err:
        load_noise_floor(path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_floor_of_another_base_is_refused() -> None:
    with pytest.raises(UsageError, match="it measured base /a, not /b"):
        check_same_base(NoiseFloor("n.json", "/a", {}), "/b")
    assert EvalOptions(base="a", candidate="b", data_dir=Path()).noise_floor is None
