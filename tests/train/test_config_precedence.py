"""One precedence for every training option: flag > `--config` file > `.labtax.yaml` `train:` > the
packaged default. (`.labtax.yaml`'s `train: lr: 0.5` used to beat `--config mine.yaml` with `lr: 0.1`:
click handed the file's values to the command as if they were flags.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax.cli import cli
from labtax.errors import UsageError
from labtax.train.config import load_config


def test_each_layer_beats_the_one_below(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("common:\n  lr: 0.1\nskills:\n  epochs: 4\n")
    config = load_config(mine, {"warmup_steps": 3}, project={"lr": 0.5, "epochs": 2, "warmup_steps": 9, "seed": 5})
    knowledge, skills = config.phases["knowledge"], config.phases["skills"]
    assert knowledge.lr == skills.lr == 0.1  # --config beats .labtax.yaml
    assert (knowledge.epochs, skills.epochs) == (2, 4)  # .labtax.yaml beats the default; the file's phase block it
    assert knowledge.warmup_steps == skills.warmup_steps == 3  # a flag beats both
    assert config.seed == 5
    default = load_config().phases["knowledge"]
    assert default.max_seq_len == knowledge.max_seq_len  # nobody set it: the packaged default
    # what the user chose, from any layer, is never fitted to small data
    assert {"lr", "epochs", "warmup_steps"} <= config.explicit["knowledge"]
    assert "max_seq_len" not in config.explicit["knowledge"]


@pytest.mark.parametrize(("labtax_yaml", "config_file", "flags", "winner"), [
    ("lr: -0.5", None, [], "-0.5"),  # the file's value is used ...
    ("lr: 0.5", "common:\n  lr: -0.1\n", [], "-0.1"),  # ... below --config ...
    ("lr: 0.5", "common:\n  lr: 0.1\n", ["--lr", "-0.2"], "-0.2"),  # ... and a flag above both
])
def test_the_command_line_ranks_the_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labtax_yaml: str,
                                           config_file: str | None, flags: list[str], winner: str) -> None:
    # A bad value makes the winner visible before any training starts: the error names it.
    (tmp_path / ".labtax.yaml").write_text(f"train:\n  {labtax_yaml}\n")
    args = ["train", "--data", str(tmp_path), "--model", "tiny", "--output", str(tmp_path / "out"),
            "--max-steps", "1", *flags]
    if config_file is not None:
        (tmp_path / "mine.yaml").write_text(config_file)
        args += ["--config", str(tmp_path / "mine.yaml")]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and f"bad value for lr: {winner}" in result.output, result.output


def test_the_command_line_hands_train_typed_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from labtax.cli import _train_request
    from labtax.train.command import LoraSettings, TrainOverrides

    (tmp_path / ".labtax.yaml").write_text("train:\n  epochs: 3\n")
    monkeypatch.chdir(tmp_path)
    args = ["--data", "d", "--output", "o", "--lr", "0.2", "--lora-rank", "4", "--lora-target-modules", "q_proj, v_proj"]
    with click.Context(cli, info_name="labtax") as parent:
        parent.default_map = {"train": {"epochs": 3}}  # what LabtaxGroup reads from .labtax.yaml
        ctx = cli.commands["train"].make_context("train", args, parent=parent)
    from_file = frozenset(n for n in ctx.params if ctx.get_parameter_source(n) is click.core.ParameterSource.DEFAULT_MAP)
    request = _train_request(ctx.params, from_file)
    assert request.flags == TrainOverrides(lr=0.2) and request.from_file == TrainOverrides(epochs=3)
    assert request.lora == LoraSettings(rank=4, alpha=8, dropout=0.05, target_modules=("q_proj", "v_proj"))
    assert request.config().phases["knowledge"].epochs == 3
    with pytest.raises(UsageError, match="rank must be at least 1"):
        LoraSettings(rank=-1, alpha=2)
