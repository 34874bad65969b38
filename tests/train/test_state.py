"""The resumable training state: no pickle (safetensors + JSON), checked before it is read, faults
as one line with exit 2 and nothing lost (issue 22)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from train_fixtures import step_records

from labtax.cli import cli
from labtax.errors import EXIT_USAGE, InputOutputError
from labtax.train.config import load_config
from labtax.train.phases import run_training

torch.set_num_threads(1)

# 3 steps of 8 samples an epoch, 2 epochs; a checkpoint (and the state) after every step.
FAST = {"lr": 3e-3, "epochs": 2, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 512,
        "max_tokens_per_batch": 1024, "save_every": 8}
ARGS = ["--model", "tiny", "--phase", "knowledge", "--lr", "3e-3", "--epochs", "2", "--effective-batch", "8",
        "--warmup-steps", "2", "--max-seq-len", "512", "--max-tokens-per-batch", "1024", "--save-every", "8",
        "--select", "last"]


@pytest.fixture
def data_dir(short_data_dir: Path) -> Path:
    """Short answers (conftest.short_data_dir): nothing here depends on how many tokens a sample has."""
    return short_data_dir


class Stop(Exception):
    """Ends a run after a given step, as a kill would (the state of the last save stays)."""


def train(data_dir: Path, out: Path, stop_after: int | None = None, **overrides: Any) -> dict[str, Any]:
    def log(line: str) -> None:
        if stop_after is not None and f"] step {stop_after + 1}/" in line:
            raise Stop(line)

    return run_training(data_dir, "tiny", out, ["knowledge"], load_config(overrides={**FAST, **overrides}),
                        select="last", log=log)


def final_weights(summary: dict[str, Any]) -> dict[str, torch.Tensor]:
    return load_file(str(Path(summary["final"]) / "model.safetensors"))


class PlantedCode:
    """A pickle that creates a file when it is loaded: what a planted state.pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_state_runs_no_code_and_is_refused_in_one_line(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = out / "knowledge" / "state"
    state.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (state / "state.pt").write_bytes(pickle.dumps({"model": PlantedCode(marker)}))
    (state / "progress.json").write_text(json.dumps({"step": 1, "samples": 8, "checkpoints": []}))
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--output", str(out), *ARGS])
    assert not marker.exists()
    assert result.exit_code == EXIT_USAGE, result.output
    assert "old pickle format" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 or result.output.count("labtax: error:") == 1


def test_the_state_is_safetensors_and_json_and_a_resumed_run_equals_an_uninterrupted_one(
        data_dir: Path, tmp_path: Path) -> None:
    whole = train(data_dir, tmp_path / "whole", save_state=False)  # the reference needs no state of its own
    with pytest.raises(Stop):
        train(data_dir, tmp_path / "cut", stop_after=4)
    state = tmp_path / "cut" / "knowledge" / "state"
    assert sorted(p.name for p in state.iterdir()) == ["rank00000.json", "rank00000.safetensors", "state.json"]
    header = json.loads((state / "state.json").read_text())
    assert header["progress"]["step"] == 4 and header["world_size"] == 1
    # anchor_rows: the content key of the skill rows phase 1's anchor keeps (on by default)
    assert set(header["inputs"]) == {"data_sha256", "held_out_sha256", "model", "settings", "labtax_version",
                                     "anchor_rows"}
    tensors = load_file(str(state / "rank00000.safetensors"))
    assert any(k.startswith("optim/") and k.endswith("/exp_avg_sq") for k in tensors)
    lines: list[str] = []
    resumed = run_training(data_dir, "tiny", tmp_path / "cut", ["knowledge"], load_config(overrides=FAST),
                           select="last", log=lines.append)
    assert any("resuming at step 4/6" in line for line in lines)
    a, b = final_weights(whole), final_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [s["loss"] for s in step_records(tmp_path / "cut" / "knowledge" / "metrics.jsonl")] == \
        [s["loss"] for s in step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, output) of a run stopped after step 2, its state saved: one training for the three damaged
    states below, each damaged in a copy, and a copy resumed."""
    from train_fixtures import make_data_dir

    root = tmp_path_factory.mktemp("stopped")
    data = make_data_dir(root / "data", long_words=12)  # as short_data_dir
    with pytest.raises(Stop):
        train(data, root / "out", stop_after=2)
    return data, root / "out"


@pytest.mark.parametrize("damage", ["truncated tensors", "header not JSON", "rank file not JSON"])
def test_a_damaged_state_is_one_line_exit_2(stopped_run: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    data_dir, out = stopped_run[0], tmp_path / "out"
    shutil.copytree(stopped_run[1], out)
    state = out / "knowledge" / "state"
    if damage == "truncated tensors":
        path = state / "rank00000.safetensors"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "header not JSON":
        path = state / "state.json"
        path.write_text(path.read_text()[:-40])
    else:
        path = state / "rank00000.json"
        path.write_text("{\"rank\": 0, \"rng\":")
    result = CliRunner().invoke(cli, ["train", "--data", str(data_dir), "--output", str(out), *ARGS])
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.output.count("labtax: error:") == 1 and "Traceback" not in result.output
    assert str(state) in result.output  # names the path, and says how to go on
    with pytest.raises(InputOutputError):
        train(data_dir, out)


def test_rng_state_restores_to_this_ranks_device_only() -> None:
    """A state saved on a GPU rank holds that rank's device generator only; restoring it where there is
    no GPU (or fewer) skips it instead of indexing past the visible devices."""
    import random

    from labtax.train.checkpoint import _rng_state, set_rng_state
    from labtax.train.parallel import Runtime

    runtime = Runtime(torch.device("cpu"))
    saved = json.loads(json.dumps(_rng_state(runtime)))
    expected = (random.random(), torch.rand(3).tolist())
    saved["cuda"] = saved["torch"]  # as written by a rank on cuda:7
    set_rng_state(saved, Runtime(torch.device("cpu"), rank=7, local_rank=7))
    assert (random.random(), torch.rand(3).tolist()) == expected


def test_a_copied_output_folder_resumes_with_its_own_checkpoints_and_leaves_the_original_alone(
        stopped_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The state records checkpoints by the path they were saved at; a copy that resumes prunes (and
    reports) its own, never the folder it was copied from."""
    data_dir, original = stopped_run
    before = sorted(p.name for p in (original / "knowledge" / "checkpoints").iterdir())
    assert before  # the stopped run saved some
    out = tmp_path / "copy"
    shutil.copytree(original, out)
    summary = train(data_dir, out)
    assert sorted(p.name for p in (original / "knowledge" / "checkpoints").iterdir()) == before
    result = json.loads((out / "knowledge" / "result.json").read_text())
    assert all(Path(c["path"]).parent == out / "knowledge" / "checkpoints" for c in result["checkpoints"])
    assert Path(summary["final"]).parent == out / "knowledge" / "checkpoints"
    assert len([p for p in (out / "knowledge" / "checkpoints").iterdir()]) == 1  # --select last keeps one
