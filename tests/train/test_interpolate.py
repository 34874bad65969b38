"""A phase's result pulled back toward its start (labtax/train/interpolate.py): the selected checkpoint
is start + w x (trained - start), in a folder of its own, and the trained one stays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from labtax.errors import ConfigError
from labtax.models import load_model, load_tokenizer
from labtax.train.config import load_config
from labtax.train.phases import run_training

torch.set_num_threads(1)

FAST = {"lr": 3e-3, "epochs": 1, "effective_batch": 8, "warmup_steps": 1, "max_seq_len": 512,
        "max_tokens_per_batch": 1024, "save_state": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    from train_fixtures import make_data_dir

    root = tmp_path_factory.mktemp("interpolate")
    data = make_data_dir(root / "data", long_words=12)
    start = root / "start"  # a student folder, as a pretrained one is given (`tiny` by name is not pulled back)
    load_model("tiny").save_pretrained(start)
    load_tokenizer("tiny").save_pretrained(start)
    lines: list[str] = []
    summary = run_training(data, str(start), root / "out", ["knowledge"],
                           load_config(overrides={**FAST, "interpolate": 0.25}), select="last", log=lines.append)
    return root, summary, lines


def test_the_selected_checkpoint_is_the_start_moved_w_of_the_way_to_the_trained_weights(
        trained: tuple[Path, dict[str, Any], list[str]]) -> None:
    root, summary, lines = trained
    selected = summary["phases"]["knowledge"]["selected"]
    chosen, source = Path(selected["path"]), Path(selected["interpolated_from"])
    assert chosen.name == "interpolated_" + source.name.split("_")[-1] and chosen.parent == source.parent
    assert summary["final"] == str(chosen) and selected["interpolate"] == 0.25
    assert any("interpolated (0.25 of the way from the start" in line for line in lines)
    start = load_file(str(root / "start" / "model.safetensors"))
    after, before = load_file(str(chosen / "model.safetensors")), load_file(str(source / "model.safetensors"))
    assert after.keys() == before.keys()
    moved = 0
    for name, value in after.items():
        expected = start[name].float() + 0.25 * (before[name].float() - start[name].float())
        assert torch.allclose(value.float(), expected, atol=1e-6), name
        moved += int(not torch.equal(before[name], start[name]))
    assert moved  # training changed weights, so the two checkpoints differ
    meta = json.loads((chosen / "labtax_checkpoint.json").read_text())
    assert meta["interpolated_from"] == str(source) and meta["interpolate"] == 0.25
    assert (chosen / "config.json").is_file() and (chosen / "tokenizer.json").is_file()  # loadable as a model
    load_model(str(chosen))
    listed = summary["phases"]["knowledge"]["checkpoints"]
    assert listed[-1]["path"] == str(chosen) and (chosen / "README.md").is_file()  # carded like the others
    assert source.is_dir()  # the trained checkpoint stays


def test_tiny_is_not_pulled_back(short_data_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    summary = run_training(short_data_dir, "tiny", tmp_path / "out", ["knowledge"],
                           load_config(overrides={**FAST, "max_steps": 1, "interpolate": 0.5}), select="last",
                           log=lines.append)
    assert "interpolated_from" not in summary["phases"]["knowledge"]["selected"]
    assert any("interpolate 0.5 not applied: tiny's random weights hold nothing to keep" in line for line in lines)


def test_a_rerun_keeps_the_interpolated_selection(trained: tuple[Path, dict[str, Any], list[str]]) -> None:
    root, summary, _ = trained
    lines: list[str] = []
    again = run_training(root / "data", str(root / "start"), root / "out", ["knowledge"],
                         load_config(overrides={**FAST, "interpolate": 0.25}), select="last", log=lines.append)
    assert any("[knowledge] already done" in line for line in lines)
    assert again["final"] == summary["final"]


@pytest.mark.parametrize("value", [0, 1.5, -0.5])
def test_a_weight_outside_0_to_1_is_a_config_error(value: float) -> None:
    with pytest.raises(ConfigError, match="interpolate"):
        load_config(overrides={"interpolate": value})


def test_off_by_default_and_a_config_sets_it_per_phase(tmp_path: Path) -> None:
    # docs/train.md, *Pulling phase 1 back*: better on two taxonomies, worse on the demo's: not a default
    assert {p.interpolate for p in load_config().phases.values()} == {1.0}
    path = tmp_path / "c.yaml"
    path.write_text("knowledge:\n  interpolate: 0.5\n")
    config = load_config(path)
    assert config.phases["knowledge"].interpolate == 0.5 and config.phases["skills"].interpolate == 1.0


def test_a_checkpoint_that_is_not_its_starts_model_is_one_line(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from labtax.errors import UsageError
    from labtax.train.interpolate import interpolate_checkpoint

    folder = tmp_path / "checkpoints" / "samples_8"
    folder.mkdir(parents=True)
    save_file({"not.a.tiny.weight": torch.zeros(2, 2)}, str(folder / "model.safetensors"))
    with pytest.raises(UsageError, match="has no counterpart in tiny"):
        interpolate_checkpoint("tiny", folder, 0.5, 42)
    assert not list(folder.parent.glob("*interpolated_*"))  # nothing half-written left behind
