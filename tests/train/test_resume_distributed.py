"""Real processes: SIGKILL mid-phase then resume; 2 CPU ranks (gloo, FSDP2), killed, then resumed under
torchrun. The killed runs are processes forked from pytest's (train_fixtures.fork_cli): a SIGKILL is
the same for them, and they skip a fresh interpreter's ~7 CPU-s of imports each."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import Forked, fork_cli, fork_ranks, invoke_cli, no_state_config, run_cli, step_records

COMMON = ["train", "--model", "tiny", "--phase", "knowledge", "--lr", "3e-3", "--warmup-steps", "2",
          "--max-seq-len", "512", "--max-tokens-per-batch", "1024", "--select", "last"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoints = sorted((run / "knowledge" / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


@pytest.mark.slow  # two real training subprocesses, one of them killed: minutes on 2 cores
def test_sigkill_mid_phase_then_resume_gives_the_same_weights(short_data_dir: Path, tmp_path: Path) -> None:
    # A state every 2 of the 12 steps: a kill between two states also makes the resumed run redo a step
    # the killed one had logged, and the metrics must still hold each step once.
    args = [*COMMON, "--data", str(short_data_dir), "--effective-batch", "4", "--epochs", "2", "--save-every", "8"]
    whole = invoke_cli([*args, *no_state_config(tmp_path), "--output", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    assert len(step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")) == 12

    killed = tmp_path / "killed"
    proc = fork_cli([*args, "--output", str(killed)], tmp_path / "killed.log")
    metrics = killed / "knowledge" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(step_records_safe(metrics)) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "knowledge" / "result.json").exists()  # it really died mid-phase
    done_before = len(step_records_safe(metrics))
    assert 5 <= done_before < 12

    resumed = invoke_cli([*args, "--output", str(killed)])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step" in resumed.stderr
    a, b = weights(tmp_path / "whole"), weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # The metrics log holds each step once, as in the uninterrupted run.
    steps = step_records(metrics)
    assert [s["step"] for s in steps] == list(range(1, 13))
    assert [s["loss"] for s in steps] == [s["loss"] for s in step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")]


def step_records_safe(metrics: Path) -> list[dict[str, object]]:
    try:
        return step_records(metrics)
    except ValueError:  # a line being written right now
        return []


def _kill_after_state(ranks: list[Forked], out: Path, step: int) -> None:
    """SIGKILL every rank once the state holds `step` (the state is renamed into place whole, so a
    state.json seen is complete)."""
    state = out / "knowledge" / "state" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and all(rank.poll() is None for rank in ranks):
        try:
            if json.loads(state.read_text())["progress"]["step"] >= step:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    for rank in ranks:
        rank.send_signal(signal.SIGKILL)
    # Killed, or (the other) failing as its peer vanished: none of them finished.
    assert 0 not in [rank.wait() for rank in ranks], [r.output()[-2000:] for r in ranks]
    assert not (out / "knowledge" / "result.json").exists()  # it died mid-phase


@pytest.mark.slow  # torchrun with 2 gloo ranks, killed, then resumed on 1 rank and on 2
def test_two_cpu_ranks_match_one_process_and_their_sharded_state_resumes_on_one_rank_and_on_two(
        short_data_dir: Path, tmp_path: Path) -> None:
    """2 gloo ranks (FSDP2) against one process on the same data: the same losses and tokens step by
    step and the same weights, checked on the 2-rank run that is killed after a state and resumed on
    2 ranks (its metrics hold every step, from both launches); the state also resumes on 1 rank. (One
    run for what two tests each trained: an uninterrupted 2-rank run added a third torchrun launch.)"""
    args = [*COMMON, "--data", str(short_data_dir), "--effective-batch", "8", "--epochs", "2", "--save-every", "8",
            "--max-tokens-per-batch", "600"]
    whole = invoke_cli([*args, *no_state_config(tmp_path), "--output", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    _kill_after_state(fork_ranks([*args, "--output", str(cut)], tmp_path / "logs"), cut, 3)
    state = cut / "knowledge" / "state"
    names = sorted(p.name for p in state.iterdir())
    assert names == ["rank00000.json", "rank00000.safetensors", "rank00001.json", "rank00001.safetensors",
                     "state.json"]
    assert json.loads((state / "state.json").read_text())["world_size"] == 2
    # Each rank wrote its own rows: neither file holds a whole weight matrix.
    from safetensors import safe_open

    with safe_open(str(state / "rank00001.safetensors"), framework="pt") as f:
        rows = f.get_slice("model/lm.model.layers.0.mlp.up_proj.weight").get_shape()[0]
    assert 0 < rows < load_file(str(next((tmp_path / "whole" / "knowledge" / "checkpoints").iterdir())
                                     / "model.safetensors"))["model.layers.0.mlp.up_proj.weight"].shape[0]
    shutil.copytree(cut, tmp_path / "cut2")

    on_one = invoke_cli([*args, "--output", str(cut)])
    assert on_one.returncode == 0, on_one.stderr[-3000:]
    assert "resuming at step" in on_one.stderr
    on_two = run_cli([*args, "--output", str(tmp_path / "cut2"), "--nproc-per-node", "2"], timeout=300)
    assert on_two.returncode == 0, on_two.stderr[-3000:]
    assert "torch.distributed.run --nproc-per-node=2" in on_two.stderr
    assert on_two.stdout.strip().count("\n") == 0  # rank 0 alone reports progress and writes
    one = step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")
    two = step_records(tmp_path / "cut2" / "knowledge" / "metrics.jsonl")
    assert [s["step"] for s in one] == [s["step"] for s in two] == list(range(1, 7))
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-4
        assert a["tokens"] == b["tokens"]
    assert one[-1]["loss"] < one[0]["loss"]
    # The gathered FSDP checkpoints of both resumed runs match the 1-process run's.
    reference = weights(tmp_path / "whole")
    for run in (cut, tmp_path / "cut2"):
        got = weights(run)
        for name in reference:
            torch.testing.assert_close(got[name], reference[name], atol=1e-4, rtol=0)
        losses = [s["loss"] for s in step_records(run / "knowledge" / "metrics.jsonl")]
        assert losses == pytest.approx([s["loss"] for s in step_records(tmp_path / "whole" / "knowledge"
                                                                          / "metrics.jsonl")], abs=1e-4)
