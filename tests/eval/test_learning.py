"""What a change taught, not how the answers sound: the tiny model trained on one leaf's made-up facts
is `improved` on that leaf's closed-book choices while a control leaf with other facts in the same
template is not; trained on other facts in the same template (style only), neither leaf is improved,
though the likelihood of every reference answer goes up (the template is learned)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from facts_fixtures import CONTROL_LEAF, FACT_LEAF, make_fact_data

from labtax.eval.record import EvalReport, LeafRow
from labtax.eval.run import EvalOptions, run_eval
from labtax.train.config import load_config
from labtax.train.phases import run_training

# 8 facts x 4 question forms, 20 epochs: ~80 optimizer steps of the tiny model (seconds each run).
# One checkpoint, the last (the one `select="last"` keeps), without its resumable state: per epoch, 20
# checkpoints each with a held-out loss and the optimizer's state, were a quarter of the run's CPU.
TRAIN = {"lr": 3e-3, "epochs": 20, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 128,
         "max_tokens_per_batch": 1024, "schedule": "constant", "save_every": 10**9, "save_state": False}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EvalReport]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("facts")
    data = make_fact_data(root)
    out = {}
    for name, d in data.items():
        summary = run_training(d, "tiny", root / f"run-{name}", ["knowledge"], load_config(overrides=TRAIN),
                               select="last", log=lambda _line: None)
        candidate = summary["phases"]["knowledge"]["selected"]["path"]
        out[name] = run_eval(EvalOptions(base="tiny", candidate=candidate, data_dir=d, device="cpu"))
    return out


def _rows(report: EvalReport) -> dict[str, LeafRow]:
    return {r.leaf: r for r in report.leaves}


def test_the_taught_leaf_improves_on_its_choices_and_the_control_does_not(reports: dict[str, Any]) -> None:
    rows = _rows(reports["facts"])
    taught, control = rows[FACT_LEAF], rows[CONTROL_LEAF]
    assert taught.evidence == "choices" and taught.verdict == "improved"
    assert taught.choices.candidate_accuracy > taught.choices.base_accuracy
    assert taught.choices.change.low > 0
    assert control.evidence == "choices" and control.verdict != "improved"
    assert control.likelihood.change_pct.estimate < 0  # the template, learned on every leaf
    assert reports["facts"].verdict == "pass" and reports["facts"].exit_code == 0


def test_style_alone_improves_neither_leaf(reports: dict[str, Any]) -> None:
    rows = _rows(reports["style"])
    for leaf in (FACT_LEAF, CONTROL_LEAF):
        assert rows[leaf].evidence == "choices" and rows[leaf].verdict != "improved"
        # The old metric would have called this learning: every reference answer got likelier.
        assert rows[leaf].change_pct < -10
    assert reports["style"].verdict == "fail" and reports["style"].exit_code == 1


def test_every_item_is_held_out_from_the_teacher(reports: dict[str, Any]) -> None:
    held = reports["facts"].held_out
    # The reference answers are labelled seeds (shown to a teacher as in-context examples); choices never.
    assert held.shown_to_teacher == 2 and held.items == 18
    assert sorted(held.leaves) == [f"{FACT_LEAF} (1)", f"{CONTROL_LEAF} (1)"]


def test_report_files(reports: dict[str, Any], tmp_path: Path) -> None:
    from labtax.eval.plot import write_plot
    from labtax.report.eval import render_markdown

    md = render_markdown(reports["facts"])
    assert f"| **`{FACT_LEAF}`** (changed) | choices (8) | 25% -> 100% |" in md
    assert write_plot(reports["facts"], tmp_path / "eval.png").stat().st_size > 10_000
