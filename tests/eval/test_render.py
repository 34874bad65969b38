"""The renderers read only the report dict: check them on a hand-made report (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from labtax.eval.data import Example, SelectedLeaf, Selection
from labtax.eval.gate import Thresholds
from labtax.eval.judge import PairTally
from labtax.eval.noise import NoiseFloor
from labtax.eval.record import EvalReport
from labtax.eval.run import EvalOptions, JudgeOptions, _ModelResult, build_report
from labtax.eval.scorer import LeafScore
from labtax.report.eval import render_json, render_markdown, render_text


def _report(judge: bool, noise_floor: NoiseFloor | None = None) -> EvalReport:
    leaves = [SelectedLeaf("skills/a|b", True), SelectedLeaf("skills/new", True),
              SelectedLeaf("knowledge/c", False), SelectedLeaf("knowledge/d", False)]
    item = Example("x", (("user", "q?"),), "a.")
    selection = Selection(leaves=leaves, examples={"skills/a|b": [item] * 2, "skills/new": [],
                                                   "knowledge/c": [item] * 3, "knowledge/d": [item]},
                          mode="changed", sample_unchanged=5, seed=0, manifest=True)
    base = _ModelResult({"skills/a|b": LeafScore("skills/a|b", 2, 10, -20.0),
                         "knowledge/c": LeafScore("knowledge/c", 3, 10, -10.0),
                         "knowledge/d": LeafScore("knowledge/d", 1, 4, -4.0)})
    cand = _ModelResult({"skills/a|b": LeafScore("skills/a|b", 2, 10, -18.0),   # NLL 2.0 -> 1.8: -10 %
                         "knowledge/c": LeafScore("knowledge/c", 3, 10, -10.4),  # 1.0 -> 1.04: +4 %
                         "knowledge/d": LeafScore("knowledge/d", 1, 4, -4.4)})   # 1.0 -> 1.1: +10 %
    judge_options = None
    pairs = None
    if judge:
        judge_options = JudgeOptions(endpoints=("http://127.0.0.1:1/v1",), model="j")
        # Two questions: won in both orders; one order malformed, the other a tie.
        pairs = {"skills/a|b": PairTally((1.0, 0.5), wins=2, ties=1, losses=0, malformed=1, failed=0)}
    options = EvalOptions(base="tiny", candidate="ckpt", data_dir=Path("data"), thresholds=Thresholds(),
                          judge=judge_options, noise_floor=noise_floor)
    return build_report(options, selection, base, cand, judge_model="openai:j" if judge else None, pairs=pairs)


def test_report_rows_and_verdict() -> None:
    report = _report(judge=False)
    rows = {r.leaf: r for r in report.leaves}
    assert abs(rows["skills/a|b"].change_pct + 10.0) < 1e-9 and rows["skills/a|b"].status == "improved"
    assert rows["skills/new"].status == "no_data" and rows["skills/new"].base is None
    assert abs(rows["knowledge/c"].change_pct - 4.0) < 1e-9 and rows["knowledge/c"].status == "stable"
    assert rows["knowledge/d"].status == "regressed" and not rows["knowledge/d"].passed
    assert report.verdict == "fail" and report.exit_code == 1
    assert report.summary.failed == 1 and report.summary.no_data == 1
    # One document on disk, read back into the same records.
    assert EvalReport.from_json(json.loads(render_json(report))) == report
    assert json.loads(render_json(report)) == report.to_json()


def test_text_and_markdown() -> None:
    report = _report(judge=False)
    text = render_text(report)
    assert "knowledge/d" in text and "+10.00%" in text and "regressed" in text
    assert text.rstrip().endswith("FAIL: 1 unchanged leaf(s) regressed by more than 5%")
    md = render_markdown(report)
    assert md.startswith("### ❌ labtax eval: fail\n")
    assert "| `skills/a\\|b` | changed | -2.0000 | -1.8000 | -10.00% | ✅ improved |" in md
    assert "| `skills/new` | changed | n/a | n/a | n/a | ➖ no data |" in md
    assert "| `knowledge/d` | unchanged | -1.0000 | -1.1000 | +10.00% | ❌ regressed |" in md


def test_judge_win_rate_decides_a_changed_skill_leaf() -> None:
    report = _report(judge=True)
    rows = {r.leaf: r for r in report.leaves}
    j = rows["skills/a|b"].judge
    assert j.questions == 2 and j.rated == 2 and j.win_rate == 0.75
    assert (j.wins, j.ties, j.losses, j.malformed, j.failed) == (2, 1, 0, 1, 0)
    # The judge is the stronger evidence for a skill leaf: a 0.75 win rate whose interval holds 0.5
    # (two questions) is no change, so the leaf fails although its likelihood improved.
    assert rows["skills/a|b"].evidence == "judge" and rows["skills/a|b"].verdict == "no-change"
    assert rows["skills/a|b"].status == "not_improved"
    assert rows["knowledge/c"].judge is None  # knowledge leaves are not judged
    assert report.judge.model == "openai:j"
    assert report.judge.requests == 4 and report.judge.malformed == 1
    md = render_markdown(report)
    assert "| judge (2) | 2W 1T 0L |" in md
    assert "1 malformed and 0 failed replies of 4" in md
    assert "pairwise by openai:j" in render_text(report)


def test_a_tokenization_mismatch_is_flagged() -> None:
    report = _report(judge=False)
    assert report.same_tokenization is True
    assert "tokenize the answers differently" not in render_text(report)
    options = EvalOptions(base="a", candidate="b", data_dir=Path("data"))
    selection = Selection(leaves=[SelectedLeaf("s/x", True)], examples={"s/x": [Example("s/x", (), "a.")]},
                          mode="changed", sample_unchanged=5, seed=0, manifest=True)
    mismatch = build_report(options, selection, _ModelResult({"s/x": LeafScore("s/x", 1, 10, -20.0)}),
                            _ModelResult({"s/x": LeafScore("s/x", 1, 12, -20.0)}))
    assert mismatch.same_tokenization is False
    assert "tokenize the answers differently" in render_text(mismatch)
    assert "Base and candidate tokenize the answers differently" in render_markdown(mismatch)


def test_eval_png_is_written(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from labtax.eval.plot import write_plot

    png = write_plot(_report(judge=False), tmp_path / "out" / "eval.png")
    image = imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 100 and image.shape[1] > 100


def test_the_demo_renders_its_eval_json_as_markdown(tmp_path: Path) -> None:
    # scripts/demo.sh turns `labtax eval --format json`'s file into eval.md with an inline snippet: run
    # that very snippet (it once passed the JSON dict where the renderer reads an EvalReport).
    import re
    import subprocess
    import sys

    demo = (Path(__file__).parents[2] / "scripts" / "demo.sh").read_text(encoding="utf-8")
    snippet = re.search(r"-c '([^']*render_markdown[^']*)'", demo)
    assert snippet is not None
    report = _report(judge=False)
    (tmp_path / "eval.json").write_text(render_json(report), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", snippet.group(1), str(tmp_path / "eval.json")],
                         capture_output=True, text=True, check=True).stdout
    assert out == render_markdown(report)
