"""The schedule fits the data: small phases get a smaller batch and warm-up so the peak lr is reached."""

from __future__ import annotations

import dataclasses

import pytest

from labtax.errors import ConfigError
from labtax.train.config import load_config
from labtax.train.loop import lr_factor
from labtax.train.schedule import describe, fit_schedule


def test_ten_knowledge_leaves_reach_the_peak_learning_rate() -> None:
    cfg = load_config().phases["knowledge"]  # batch 128, warm-up 25, 7 epochs
    fitted, rec = fit_schedule(cfg, 200)  # ten leaves x 20 samples: 14 steps as configured
    assert rec["fitted"] and rec["configured"] == {"effective_batch": 128, "warmup_steps": 25}
    assert fitted.effective_batch == 20 and rec["steps_per_epoch"] == 10 and rec["total_steps"] == 70
    assert fitted.warmup_steps == 7 and rec["peak_reached"]
    factors = [lr_factor(s, fitted.warmup_steps, rec["total_steps"], fitted.schedule) for s in range(70)]
    assert max(factors) == 1.0 and factors.index(1.0) == 6
    line = describe("knowledge", rec)
    assert "effective batch 20, warm-up 7 of 70 steps" in line and "fitted from batch 128" in line
    skills, srec = fit_schedule(load_config().phases["skills"], 2000)  # batch 3840: one step per epoch
    assert skills.effective_batch == 200 and skills.warmup_steps == 10 and srec["total_steps"] == 100


def test_a_fitted_batch_steps_the_same_batch_whatever_else_the_set_holds() -> None:
    """With `fitted_batch: 8` a leaf's rows get the same share of the updates in a set of 14 rows as in
    one of 55 or 200, not a tenth of the samples (1, 5, 20). Off by default (docs/train.md)."""
    assert load_config().phases["knowledge"].fitted_batch == 0 == load_config().phases["skills"].fitted_batch
    cfg = dataclasses.replace(load_config().phases["knowledge"], fitted_batch=8)
    for samples, steps in ((14, 2), (55, 7), (200, 25)):
        fitted, rec = fit_schedule(cfg, samples)
        assert fitted.effective_batch == 8 and rec["steps_per_epoch"] == steps and rec["fitted"]
        assert rec["total_steps"] == steps * cfg.epochs and rec["peak_reached"]
    assert fit_schedule(cfg, 5)[0].effective_batch == 8 and fit_schedule(cfg, 5)[1]["steps_per_epoch"] == 1
    # No cliff where the configured warm-up fits: 8 up to 800 rows, then 100 steps an epoch, then 128.
    assert [fit_schedule(cfg, n)[0].effective_batch for n in (320, 800, 1_000, 5_000, 100_000)] == [8, 8, 10, 50, 128]
    big, rec = fit_schedule(cfg, 1_000)
    assert rec["steps_per_epoch"] == 100 and big.warmup_steps == 25  # the configured warm-up fits


def test_a_fitted_batch_is_set_per_phase_in_the_config_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "train.yaml").write_text("knowledge:\n  fitted_batch: 8\n")
    config = load_config(tmp_path / "train.yaml")
    assert config.phases["knowledge"].fitted_batch == 8 and config.phases["skills"].fitted_batch == 0
    assert fit_schedule(config.phases["knowledge"], 55, config.explicit["knowledge"])[0].effective_batch == 8
    (tmp_path / "bad.yaml").write_text("knowledge:\n  fitted_batch: -1\n")
    with pytest.raises(ConfigError, match="fitted_batch"):
        load_config(tmp_path / "bad.yaml")


def test_enough_data_or_fitting_off_keeps_the_configured_schedule() -> None:
    cfg = load_config().phases["knowledge"]
    same, rec = fit_schedule(cfg, 100_000)
    assert same == cfg and not rec["fitted"] and rec["total_steps"] == 782 * 7
    off = dataclasses.replace(cfg, fit_schedule=False)
    kept, rec = fit_schedule(off, 200)
    assert kept == off and not rec["fitted"] and not rec["peak_reached"]
    assert load_config(overrides={"fit_schedule": False}).phases["skills"].fit_schedule is False


def test_the_fitted_schedule_is_printed_and_recorded(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from labtax.train.phases import run_training

    said: list[str] = []
    config = load_config(overrides={"lr": 3e-3, "epochs": 1, "max_seq_len": 512, "max_tokens_per_batch": 1024})
    summary = run_training(data_dir, "tiny", tmp_path / "run", ["knowledge"], config, select="last", log=said.append)
    rec = summary["phases"]["knowledge"]["schedule"]
    assert rec["fitted"] and rec["effective_batch"] == 2 and rec["warmup_steps"] == 1 and rec["total_steps"] == 12
    assert summary["phases"]["knowledge"]["steps"] == 12
    assert any("schedule: effective batch 2, warm-up 1 of 12 steps" in line for line in said)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["phases"]["knowledge"]["schedule"] == rec


def test_an_explicit_batch_or_warmup_wins_over_the_fitted_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(overrides={"effective_batch": 100})  # --effective-batch 100 (or .labtax.yaml train:)
    cfg = config.phases["knowledge"]
    fitted, rec = fit_schedule(cfg, 200, config.explicit["knowledge"])
    assert fitted.effective_batch == 100 and rec["explicit"] == ["effective_batch"]
    assert rec["steps_per_epoch"] == 2 and rec["total_steps"] == 14  # the warm-up is still fitted to these
    assert fitted.warmup_steps == 1 and rec["peak_reached"] and rec["fitted"]
    assert "effective batch as given" in describe("knowledge", rec)
    both = load_config(overrides={"effective_batch": 100, "warmup_steps": 25})
    kept, rec = fit_schedule(both.phases["knowledge"], 200, both.explicit["knowledge"])
    assert (kept.effective_batch, kept.warmup_steps) == (100, 25) and not rec["fitted"] and not rec["peak_reached"]
    # A value from the --config YAML is the user's too; one the YAML leaves out is still fitted.
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("knowledge:\n  effective_batch: 128\n")
    from_yaml = load_config(yaml_file)
    assert from_yaml.explicit["knowledge"] == {"effective_batch"} and "effective_batch" not in from_yaml.explicit["skills"]
    kept, rec = fit_schedule(from_yaml.phases["knowledge"], 200, from_yaml.explicit["knowledge"])
    assert kept.effective_batch == 128 and kept.warmup_steps == 1
    skills, _ = fit_schedule(from_yaml.phases["skills"], 2000, from_yaml.explicit["skills"])
    assert skills.effective_batch == 200  # the packaged default is still fitted
    # Nothing given: the fitted values as before (the default stays the fitted one).
    assert fit_schedule(cfg, 200, load_config().explicit["knowledge"])[0].effective_batch == 20


def _fact_rows(path, facts: int, per_fact: int, other: int = 0) -> None:  # type: ignore[no-untyped-def]
    import json

    rows = [{"messages": [{"role": "user", "content": f"q{f}-{n}"}, {"role": "assistant", "content": "a"}],
             "metadata": {"fact": f"doc.md#0/{f}"}, "unmask": False} for f in range(facts) for n in range(per_fact)]
    rows += [{"messages": [{"role": "user", "content": f"passage {i}"}], "metadata": {"source": "document"},
              "unmask": True} for i in range(other)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_the_knowledge_phase_fits_its_epochs_to_exposures_of_each_fact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labtax.train.schedule import fit_epochs, rows_per_fact

    cfg = load_config().phases["knowledge"]
    assert cfg.exposures == 24 and load_config().phases["skills"].exposures == 0
    _fact_rows(tmp_path / "p1.jsonl", facts=20, per_fact=6, other=5)  # 3 wordings x open + closed book
    per_fact = rows_per_fact(tmp_path / "p1.jsonl")
    assert per_fact == [6] * 20
    fitted, rec = fit_epochs(cfg, per_fact)
    assert fitted.epochs == 4 and rec["epochs_fitted"] and rec["rows_per_fact"] == 6  # 24 / 6
    # One wording a fact: more epochs, bounded; many wordings: fewer, at least one.
    assert fit_epochs(cfg, [1] * 5)[0].epochs == 24
    assert fit_epochs(dataclasses.replace(cfg, exposures=1000), [1])[0].epochs == 100
    assert fit_epochs(cfg, [60])[0].epochs == 1
    # --epochs given, exposures off, or data without fact ids: the configured epochs.
    assert fit_epochs(cfg, per_fact, frozenset({"epochs"}))[0].epochs == 7
    assert fit_epochs(dataclasses.replace(cfg, exposures=0), per_fact)[0].epochs == 7
    _fact_rows(tmp_path / "skills.jsonl", facts=0, per_fact=0, other=9)
    assert rows_per_fact(tmp_path / "skills.jsonl") == [] and fit_epochs(cfg, [])[0].epochs == 7
    line = describe("knowledge", {**fit_schedule(fitted, 125)[1], **rec})
    assert "4 epochs fitted to 24 exposures of each of 20 facts (6 rows each)" in line


def test_a_small_student_trains_at_the_small_model_rate_unless_lr_is_given() -> None:
    from labtax.train.schedule import fit_lr

    cfg = load_config().phases["knowledge"]
    assert cfg.lr == 2e-5 and cfg.small_model_lr == 1e-4
    small, rec = fit_lr(cfg, 135_000_000, frozenset(), {"peak_lr": cfg.lr})
    assert small.lr == 1e-4 and rec["peak_lr"] == 1e-4 and rec["small_model_lr"]
    assert fit_lr(cfg, 7_000_000_000, frozenset(), {})[0].lr == 2e-5  # the LAB rate for 7B students
    assert fit_lr(cfg, 135_000_000, frozenset({"lr"}), {})[0].lr == 2e-5  # --lr given wins
    skills = load_config().phases["skills"]
    assert fit_lr(skills, 135_000_000, frozenset(), {})[0].lr == skills.lr  # no small rate configured
