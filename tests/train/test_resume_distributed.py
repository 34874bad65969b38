"""Real subprocesses: SIGKILL mid-phase then resume; torchrun with 2 CPU ranks (gloo, FSDP2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import REPO, run_cli, step_records

COMMON = ["train", "--model", "tiny", "--phase", "knowledge", "--lr", "3e-3", "--warmup-steps", "2",
          "--max-seq-len", "512", "--max-tokens-per-batch", "1024", "--select", "last"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoints = sorted((run / "knowledge" / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


@pytest.mark.slow  # two real training subprocesses, one of them killed: minutes on 2 cores
def test_sigkill_mid_phase_then_resume_gives_the_same_weights(data_dir: Path, tmp_path: Path) -> None:
    args = [*COMMON, "--data", str(data_dir), "--effective-batch", "4", "--epochs", "2", "--save-every", "4"]
    whole = run_cli([*args, "--output", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    assert len(step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")) == 12

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "labtax", *args, "--output", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    metrics = killed / "knowledge" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(step_records_safe(metrics)) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "knowledge" / "result.json").exists()  # it really died mid-phase
    done_before = len(step_records_safe(metrics))
    assert 5 <= done_before < 12

    resumed = run_cli([*args, "--output", str(killed)])
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


@pytest.mark.slow  # torchrun with 2 gloo ranks next to a 1-process run
def test_torchrun_two_cpu_ranks_match_one_process(data_dir: Path, tmp_path: Path) -> None:
    args = [*COMMON, "--data", str(data_dir), "--effective-batch", "8", "--epochs", "2",
            "--max-tokens-per-batch", "600"]
    single = run_cli([*args, "--output", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr
    multi = run_cli([*args, "--output", str(tmp_path / "two"), "--nproc-per-node", "2"], timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "torch.distributed.run --nproc-per-node=2" in multi.stderr
    one = step_records(tmp_path / "one" / "knowledge" / "metrics.jsonl")
    two = step_records(tmp_path / "two" / "knowledge" / "metrics.jsonl")
    assert len(one) == len(two) == 6
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-4
        assert a["tokens"] == b["tokens"]
    assert one[-1]["loss"] < one[0]["loss"]
    # Rank 0 alone reports progress and writes; the gathered FSDP checkpoint matches the single run.
    assert multi.stdout.strip().count("\n") == 0
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name in w1:
        torch.testing.assert_close(w1[name], w2[name], atol=1e-4, rtol=0)
