"""scripts/demo_summary.py: the demo's last lines say what the new leaf learned and whether it worked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NEW = "knowledge/history/industry/brindle_glassworks"


def report(new_verdict: str, haiku_verdict: str) -> dict[str, Any]:
    cb = {"items": 20, "unscored": 0, "base_accuracy": 0.05, "candidate_accuracy": 0.6,
          "change": {"estimate": 0.55, "low": 0.3, "high": 0.8}}
    return {"leaves": [
        {"leaf": NEW, "changed": True, "verdict": new_verdict, "evidence": "closed_book", "closed_book": cb,
         "choices": {"items": 10, "base_accuracy": 0.3, "candidate_accuracy": 0.5,
                     "change": {"estimate": 0.2, "low": -0.1, "high": 0.5}}},
        {"leaf": "compositional_skills/writing/poetry/haiku", "changed": False, "verdict": haiku_verdict,
         "evidence": "likelihood", "closed_book": None, "choices": None}]}


def run(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(data))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/demo_summary.py"), str(path), NEW],
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_the_summary_names_closed_book_before_after_and_says_it_worked(tmp_path: Path) -> None:
    text = run(tmp_path, report("improved", "no-change"))
    assert f"new leaf {NEW}: closed-book accuracy 5% -> 60% on 20 held-out questions (+55 pts, 95% CI [+30, +80])" in text
    assert "multiple choice 30% -> 50% on 10 items" in text
    assert "unchanged leaf compositional_skills/writing/poetry/haiku: no-change (on its likelihood)" in text
    assert text.splitlines()[-1] == "the method worked: the student learned the new leaf and no leaf regressed"


def test_a_regression_or_no_learning_says_it_did_not_work(tmp_path: Path) -> None:
    last = run(tmp_path, report("no-change", "regressed")).splitlines()[-1]
    assert last.startswith("the method did not work this time: the new leaf is no-change; 1 leaf(s) regressed")


def with_haiku_change(data: dict[str, Any], pct: float, noise: float) -> dict[str, Any]:
    for row in data["leaves"]:
        if row["leaf"].endswith("haiku"):
            row["likelihood"] = {"change_pct": {"estimate": pct, "low": pct - 2, "high": pct + 2},
                                 "seed_noise_pct": noise}
    return data


def test_under_a_noise_floor_each_leaf_shows_the_retrains_change_beside_its_own(tmp_path: Path) -> None:
    # The gate (labtax eval --noise-floor) decided; the summary shows what it weighed.
    lines = run(tmp_path, with_haiku_change(report("improved", "no-change"), 11.8, 13.2)).splitlines()
    assert ("unchanged leaf compositional_skills/writing/poetry/haiku: no-change (on its likelihood; likelihood "
            "+11.8 %, another seed alone +13.2 %)") in lines
    assert lines[-1].startswith("the method worked")
    lines = run(tmp_path, with_haiku_change(report("improved", "regressed"), 9.0, -0.2)).splitlines()
    assert "likelihood +9.0 %, another seed alone -0.2 %" in lines[-2]
    assert lines[-1].startswith("the method did not work this time")
