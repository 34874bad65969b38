"""Training you can watch and checkpoints you can share: TensorBoard events that tensorboard's own
reader parses, a loss.png per phase, --save-dtype, and the model card in every checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax.cli import cli
from labtax.errors import UsageError
from labtax.train import reporting

TRAIN = ["--model", "tiny", "--epochs", "1", "--effective-batch", "8", "--lr", "3e-3", "--warmup-steps", "1",
         "--max-seq-len", "512", "--max-tokens-per-batch", "1024", "--select", "loss"]


@pytest.fixture
def data_dir(short_data_dir: Path) -> Path:
    """Short answers (conftest.short_data_dir): nothing here depends on how many tokens a sample has."""
    return short_data_dir


def train(data_dir: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--output", str(out), *TRAIN, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.skipif(not reporting.available("tensorboard"), reason="tensorboard is not installed")
def test_train_writes_tensorboard_events_loss_png_and_model_cards(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "manifest.json").write_text(json.dumps({
        "format": "labtax-manifest/1", "head": "a" * 40, "base": "b" * 40, "teacher_model": "teacher-x",
        "leaves": [{"path": "knowledge/history/rivers/qna.yaml", "kind": "knowledge", "key": "k" * 64,
                    "status": "generated", "counts": {"train": 24, "test": 6, "replay": 6}}],
        "sets": {"test.jsonl": {"samples": 6, "sha256": "c" * 64}}}))
    out = tmp_path / "run"
    train(data_dir, out, "--phase", "all")  # tensorboard by default: it is installed
    for phase in ("knowledge", "skills"):
        steps = [json.loads(line) for line in (out / phase / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in steps if r["event"] == "step"]
        events = scalars(out / "tensorboard" / phase)
        assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second"} <= set(events)
        assert [s for s, _ in events["train/loss"]] == [r["step"] for r in steps]
        assert [v for _, v in events["train/loss"]] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
        assert "eval/test_loss" in events
        png = (out / phase / "loss.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    result = json.loads((out / "skills" / "result.json").read_text())
    card = (Path(result["selected"]["path"]) / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    for needle in ("a" * 40, "teacher-x", "`knowledge/history/rivers/qna.yaml`", "k" * 64,
                   "selected checkpoint", "Weights saved in fp32", "validation.jsonl loss"):
        assert needle in card, needle
    config = json.loads((Path(result["selected"]["path"]) / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "float32"


def test_save_dtype_bf16_and_report_to_none(data_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "run"
    train(data_dir, out, "--phase", "knowledge", "--save-dtype", "bf16", "--report-to", "none")
    assert not (out / "tensorboard").exists() and (out / "knowledge" / "loss.png").is_file()
    checkpoint = Path(json.loads((out / "knowledge" / "result.json").read_text())["selected"]["path"])
    weights = load_file(str(checkpoint / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert "Weights saved in bf16" in (checkpoint / "README.md").read_text()
    assert "No `manifest.json` beside the training sets" in (checkpoint / "README.md").read_text()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert next(model.parameters()).dtype == torch.bfloat16


def test_report_to_is_checked_before_training(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--output", str(tmp_path / "o"),
                                      "--model", "tiny", "--report-to", "comet"])
    assert result.exit_code == 2 and "unknown target comet" in result.output
    with pytest.raises(UsageError, match="cannot be combined"):
        reporting.resolve_report_to("none,tensorboard")
    for name in ("wandb", "mlflow"):
        if not reporting.available(name):
            with pytest.raises(UsageError, match=f"the {name} package is not installed"):
                reporting.resolve_report_to(name)
    assert reporting.resolve_report_to("none") == []
    assert reporting.resolve_report_to(None) == (["tensorboard"] if reporting.available("tensorboard") else [])


def test_resumed_run_purges_events_past_the_restored_step(tmp_path: Path) -> None:
    if not reporting.available("tensorboard"):
        pytest.skip("tensorboard is not installed")
    first = reporting.PhaseReporter(["tensorboard"], "knowledge", tmp_path, {})
    for step in (1, 2, 3, 4):
        first.record({"event": "step", "step": step, "loss": 10.0 - step, "lr": 1e-3})
    first.close()
    again = reporting.PhaseReporter(["tensorboard"], "knowledge", tmp_path, {})
    for step in (3, 4):  # resumed from the state saved at step 2
        again.record({"event": "step", "step": step, "loss": 1.0, "lr": 1e-3})
    again.close()
    assert scalars(tmp_path / "tensorboard" / "knowledge")["train/loss"] == [(1, 9.0), (2, 8.0), (3, 1.0), (4, 1.0)]
