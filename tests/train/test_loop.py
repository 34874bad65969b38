"""The loop and the phases, in process on the tiny model: loss, checkpoints, selection, phase 2."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_fixtures import step_records

from labtax.errors import ConfigError, UsageError
from labtax.train.config import load_config
from labtax.train.loop import lr_factor
from labtax.train.phases import run_training

torch.set_num_threads(1)

FAST = {"lr": 3e-3, "epochs": 2, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 512,
        "max_tokens_per_batch": 1024}


def train(data_dir: Path, out: Path, phases: list[str], select: str = "loss", scorer: Any = None,
          **overrides: Any) -> dict[str, Any]:
    return run_training(data_dir, "tiny", out, phases, load_config(overrides={**FAST, **overrides}),
                        select=select, scorer=scorer, log=lambda s: None)


def test_loss_goes_down_and_checkpoint_loads_with_plain_transformers(short_data_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    summary = train(short_data_dir, tmp_path / "run", ["knowledge"], epochs=4)
    steps = step_records(tmp_path / "run" / "knowledge" / "metrics.jsonl")
    assert len(steps) == 12
    assert steps[-1]["loss"] < steps[0]["loss"] - 1.0
    checkpoints = summary["phases"]["knowledge"]["checkpoints"]
    assert [c["samples"] for c in checkpoints] == [24, 48, 72, 96]  # one per epoch
    assert checkpoints[-1]["test_loss"] < checkpoints[0]["test_loss"]
    model = AutoModelForCausalLM.from_pretrained(checkpoints[-1]["path"])
    assert model.config.num_hidden_layers == 2
    from labtax.models import load_model

    fresh = load_model("tiny", seed=42)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, fresh.model.layers[0].mlp.up_proj.weight)
    assert (Path(checkpoints[-1]["path"]) / "tokenizer.json").is_file()


def test_loss_is_a_token_mean_whatever_the_micro_batches(short_data_dir: Path, tmp_path: Path) -> None:
    # Short samples (33-49 tokens): 64-token micro-batches hold one sample each, 8 passes a step; 4096
    # holds a whole step in one.
    train(short_data_dir, tmp_path / "small", ["knowledge"], max_tokens_per_batch=64, max_seq_len=64, epochs=1)
    train(short_data_dir, tmp_path / "big", ["knowledge"], max_tokens_per_batch=4096, max_seq_len=64, epochs=1)
    small = step_records(tmp_path / "small" / "knowledge" / "metrics.jsonl")
    big = step_records(tmp_path / "big" / "knowledge" / "metrics.jsonl")
    # Equal to float32 summation noise (the order of the sums differs between the two layouts).
    assert [s["loss"] for s in small] == pytest.approx([b["loss"] for b in big], abs=2e-5)


def test_phase_two_starts_from_the_selected_phase_one_checkpoint_with_replay(short_data_dir: Path, tmp_path: Path) -> None:
    scored: list[Path] = []

    def scorer(path: Path) -> float:  # prefers the first checkpoint, so "last" would be wrong
        scored.append(path)
        return -float(json.loads((path / "labtax_checkpoint.json").read_text())["samples"])

    summary = train(short_data_dir, tmp_path / "run", ["knowledge", "skills"], select="eval", scorer=scorer)
    knowledge, skills = summary["phases"]["knowledge"], summary["phases"]["skills"]
    assert knowledge["selected"]["samples"] == 24 and len(knowledge["checkpoints"]) == 2
    assert skills["start"] == knowledge["selected"]["path"]
    assert skills["data"]["sources"] == {"compositional_skills": 16, "replay": 6}
    assert len(scored) == 4
    # The phase-2 run really began from those weights: its first loss is that checkpoint's loss.
    first = step_records(tmp_path / "run" / "skills" / "metrics.jsonl")[0]
    from labtax.models import load_model
    from labtax.train.data import tokenize_file
    from labtax.train.loop import evaluate_loss
    from labtax.train.parallel import Runtime

    model = load_model(knowledge["selected"]["path"])
    tok = __import__("labtax.models", fromlist=["load_tokenizer"]).load_tokenizer("tiny")
    data = tokenize_file(short_data_dir / "phase2_skills.jsonl", tok, 512, tmp_path / "run" / "cache" / "tokens")
    assert skills["data"]["samples"] == len(data) == 22
    assert math.isfinite(first["loss"]) and first["loss"] < 10.5  # trained start, not a fresh init (~10.8)
    from labtax.train.lm_loss import TrainModule

    full = evaluate_loss(TrainModule(model), data, 1024, Runtime(torch.device("cpu")), True, 2)
    assert abs(full - first["loss"]) < 0.5
    # Running the command again finds both phases done and changes nothing.
    again = train(short_data_dir, tmp_path / "run", ["knowledge", "skills"], select="eval", scorer=scorer)
    assert again["final"] == summary["final"] and len(scored) == 4


def test_select_loss_and_last(short_data_dir: Path, tmp_path: Path) -> None:
    # Two epochs: two checkpoints to choose from (more cost steps, not checks).
    summary = train(short_data_dir, tmp_path / "run", ["skills"], select="loss", effective_batch=12, epochs=2)
    checkpoints = summary["phases"]["skills"]["checkpoints"]
    best = min(checkpoints, key=lambda c: c["test_loss"])
    assert summary["phases"]["skills"]["selected"]["path"] == best["path"]
    # Phase 1 keeps its last checkpoint under --select loss: its validation rows are facts it never
    # trains, whose loss rises while it stores its own (it kept the first of 12 epochs on bench/heldout).
    knowledge = train(short_data_dir, tmp_path / "k", ["knowledge"], select="loss", effective_batch=12,
                      epochs=2)["phases"]["knowledge"]
    assert knowledge["select"] == "last" and knowledge["selected"]["path"] == knowledge["checkpoints"][-1]["path"]
    last = train(short_data_dir, tmp_path / "last", ["knowledge"], select="last", max_steps=2, save_every=8)
    sel = last["phases"]["knowledge"]["selected"]
    assert sel["samples"] == 16 and sel["step"] == 2  # max_steps caps the phase
    assert [c["samples"] for c in last["phases"]["knowledge"]["checkpoints"]] == [8, 16]


def test_bad_configuration_is_a_usage_error(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        train(data_dir, tmp_path / "a", ["knowledge"], max_tokens_per_batch=100, max_seq_len=512)
    with pytest.raises(UsageError):
        train(tmp_path / "nothing", tmp_path / "b", ["knowledge"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("knowledge:\n  lr: 1e-4\n  bogus: 1\n")
    with pytest.raises(ConfigError):
        load_config(cfg)


def test_config_precedence(tmp_path: Path) -> None:
    defaults = load_config()
    assert defaults.phases["knowledge"].lr == 2e-5 and defaults.phases["knowledge"].epochs == 7
    assert defaults.phases["skills"].lr == 6e-6 and defaults.phases["skills"].effective_batch == 3840
    assert defaults.phases["skills"].epochs == 10
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 7\ncommon:\n  warmup_steps: 3\nskills:\n  lr: 1e-5\n  epochs: 2\n")
    merged = load_config(cfg, {"epochs": 5, "lr": None})
    assert merged.seed == 7
    assert merged.phases["skills"].lr == 1e-5 and merged.phases["knowledge"].lr == 2e-5
    assert merged.phases["skills"].epochs == 5 and merged.phases["knowledge"].warmup_steps == 3


def test_lr_schedule() -> None:
    assert [lr_factor(s, 4, 10, "constant") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cosine = [lr_factor(s, 2, 10, "cosine") for s in range(10)]
    assert cosine[:3] == [0.5, 1.0, 1.0] and all(a >= b for a, b in itertools.pairwise(cosine[2:]))
    assert cosine[-1] < 0.05


def test_padded_fallback_layout_gives_the_same_losses(short_data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from labtax.train import lm_loss, phases

    train(short_data_dir, tmp_path / "packed", ["knowledge"], epochs=1)
    # A model type without packed-sequence support, and a head that cannot be fused.
    monkeypatch.setattr(phases, "PACKED_MODEL_TYPES", frozenset())
    monkeypatch.setattr(lm_loss, "fusable", lambda lm: False)
    train(short_data_dir, tmp_path / "padded", ["knowledge"], epochs=1)
    packed = step_records(tmp_path / "packed" / "knowledge" / "metrics.jsonl")
    padded = step_records(tmp_path / "padded" / "knowledge" / "metrics.jsonl")
    assert [round(r["loss"], 4) for r in packed] == [round(r["loss"], 4) for r in padded]


def test_torchrun_command_lines() -> None:
    from labtax.cli_options import forward_args
    from labtax.train.launch import torchrun_command

    args = forward_args({"data_dir": "d", "model": "tiny", "nproc_per_node": 4, "nnodes": 2, "node_rank": 1,
                         "rdzv_endpoint": "h:29500", "lr": 1e-5, "config_file": None},
                        {"data_dir": "--data"})
    assert args == ["--data", "d", "--model", "tiny", "--lr", "1e-05"]
    one = torchrun_command(args, 4)
    assert "--standalone" in one and one[-len(args) - 3:] == ["-m", "labtax", "train", *args]
    multi = torchrun_command(args, 4, 2, 1, "h:29500")
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=h", "--master-port=29500"} <= set(multi)
    with pytest.raises(UsageError):
        torchrun_command(args, 4, 2, 1, None)


def test_checkpoints_without_the_resumable_state(short_data_dir: Path, tmp_path: Path) -> None:
    """save_state: false (the demo's 135M student): checkpoints as usual, no optimizer state on disk."""
    cfg = tmp_path / "demo.yaml"
    cfg.write_text("common:\n  save_state: false\n")
    config = load_config(cfg, {**FAST, "epochs": 1})
    assert config.phases["knowledge"].save_state is False and load_config().phases["skills"].save_state is True
    summary = run_training(short_data_dir, "tiny", tmp_path / "run", ["knowledge"], config, log=lambda s: None)
    assert summary["phases"]["knowledge"]["checkpoints"]
    assert not (tmp_path / "run" / "knowledge" / "state").exists()
    cfg.write_text("common:\n  save_state: 'no'\n")
    with pytest.raises(ConfigError):
        load_config(cfg)
