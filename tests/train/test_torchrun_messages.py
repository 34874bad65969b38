"""`labtax train --nproc-per-node N`: a usage error is found before torchrun starts (one line, exit 2);
a rank that fails is named in one line with its reason and its own exit code (issue 23 item 8), and
neither the launcher nor its workers import from the working directory (issue 22)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from train_fixtures import invoke_cli, make_sample, write_jsonl

from labtax.errors import EXIT_BUG, EXIT_USAGE
from labtax.train.launch import rank_failure


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower() or "Traceback" in line]


def test_a_usage_error_under_two_ranks_is_one_line_and_exit_2_before_launching(tmp_path: Path) -> None:
    result = invoke_cli(["train", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "run"),
                         "--model", "tiny", "--nproc-per-node", "2"])
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [
        f"labtax: error: {tmp_path / 'missing' / 'phase1_knowledge.jsonl'} not found (run labtax diff-generate first)"]


def test_a_bad_config_under_two_ranks_is_exit_2_before_launching(data_dir: Path, tmp_path: Path) -> None:
    result = invoke_cli(["train", "--data", str(data_dir), "--output", str(tmp_path / "run"), "--model", "tiny",
                         "--max-seq-len", "2048", "--max-tokens-per-batch", "1024", "--nproc-per-node", "2"])
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1 and "max_tokens_per_batch (1024)" in result.stderr


def test_a_rank_that_fails_is_named_in_one_line_with_its_exit_code(tmp_path: Path) -> None:
    """Also, run from a hostile checkout (tests/ci/test_hostile_checkout.py's planted `labtax/`,
    `json.py`, `torch/`, ...): neither torchrun's launcher nor the workers it starts import from the
    working directory (issue 22), though the workers get as far as tokenizing. One real launch for
    both: a launcher and two fresh ranks cost ~11 CPU-s."""
    from cihelpers import VENV_BIN, run
    from test_hostile_checkout import plant, ran

    marker = tmp_path / "ran.txt"
    checkout = tmp_path / "taxonomy"
    plant(checkout, marker)
    # Every sample is longer than --max-seq-len: found only after tokenizing, inside the ranks.
    rng = random.Random(0)
    data = tmp_path / "data"
    write_jsonl(data / "phase1_knowledge.jsonl", [make_sample(rng, "knowledge/a", 80) for _ in range(4)])
    write_jsonl(data / "test.jsonl", [make_sample(rng, "knowledge/a", 5) for _ in range(2)])
    result = run([str(VENV_BIN / "labtax"), "train", "--data", str(data), "--output", str(tmp_path / "run"),
                  "--model", "tiny", "--phase", "knowledge", "--max-seq-len", "32", "--max-tokens-per-batch", "64",
                  "--select", "last", "--nproc-per-node", "2"], cwd=checkout, env={"OMP_NUM_THREADS": "1"})
    assert ran(marker) == [], result.stderr[-2000:]
    assert "launching" in result.stderr and "torch.distributed.run --nproc-per-node=2" in result.stderr
    assert result.returncode == EXIT_USAGE, result.stderr[-3000:]
    errors = _errors(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("labtax: error: torchrun: rank ")
    assert "failed: " in errors[0] and "no usable sample (dropped: {'too_long': 4})" in errors[0]


def test_a_rank_killed_by_a_signal_is_said_so(tmp_path: Path) -> None:
    error_file = tmp_path / "error.json"
    error_file.write_text(json.dumps({"message": "boom", "timestamp": 1, "labtax": True}))
    killed = ProcessFailure(local_rank=1, pid=4321, exitcode=-9, error_file=str(tmp_path / "none.json"))
    stopped = ProcessFailure(local_rank=0, pid=4320, exitcode=-15, error_file=str(tmp_path / "none.json"))
    killed.timestamp, stopped.timestamp = 1, 2
    failure = rank_failure(ChildFailedError("labtax", {1: killed, 0: stopped}))
    assert str(failure) == ("torchrun: rank 1 (local rank 1, pid 4321) was killed by SIGKILL (out of memory?); "
                            "1 other rank failed or stopped")
    assert failure.exit_code == EXIT_BUG
    reported = rank_failure(ChildFailedError("labtax", {3: ProcessFailure(3, 99, EXIT_USAGE, str(error_file))}))
    assert str(reported) == "torchrun: rank 3 (local rank 3, pid 99) failed: boom"
    assert reported.exit_code == EXIT_USAGE
