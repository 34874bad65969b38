"""The schedule fits the data: small phases get a smaller batch and warm-up so the peak lr is reached."""

from __future__ import annotations

import dataclasses

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
