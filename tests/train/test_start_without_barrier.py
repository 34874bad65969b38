"""A distributed start without a barrier around tokenizing (issue 23 item 2): the token caches are
built before the process group exists, by each node's local rank 0, while the other ranks wait for
the cache files, not in a collective; the collective timeout is `--dist-timeout`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from train_fixtures import fork_cli, free_port, make_data_dir, rank_env, step_records


def test_a_rank_waits_for_the_token_cache_longer_than_the_collective_timeout(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path / "data", long_words=12)  # short answers: the start is the point
    out = tmp_path / "run"
    timeout_min = 0.1  # 6 s: any collective waiting for rank 0's tokenizing would fail
    args = ["train", "--model", "tiny", "--data", str(data), "--output", str(out), "--phase", "knowledge",
            "--max-steps", "2", "--effective-batch", "4", "--max-seq-len", "512", "--max-tokens-per-batch", "1024",
            "--select", "last", "--dist-timeout", str(timeout_min)]
    port = free_port()
    # Each rank is a process forked from this one (train_fixtures.fork_cli) with torchrun's variables:
    # what matters here is when each starts, not a fresh interpreter (~7 CPU-s of imports a rank).
    waiting = fork_cli(args, tmp_path / "rank1.log", rank_env(1, 2, port))
    # Rank 1 cannot build the cache (only local rank 0 does) and must not time out waiting for it:
    # rank 0 starts only after more than the collective timeout has passed.
    time.sleep(timeout_min * 60 + 4)
    assert waiting.poll() is None, (tmp_path / "rank1.log").read_text()
    assert not (out / "cache" / "tokens").exists() or not any((out / "cache" / "tokens").glob("*/meta.json"))
    builder = fork_cli(args, tmp_path / "rank0.log", rank_env(0, 2, port))
    assert builder.wait(timeout=240) == 0, (tmp_path / "rank0.log").read_text()[-3000:]
    assert waiting.wait(timeout=60) == 0, (tmp_path / "rank1.log").read_text()[-3000:]
    steps = step_records(out / "knowledge" / "metrics.jsonl")
    assert [s["step"] for s in steps] == [1, 2]
    # Under FSDP2 too: fp32 master shards and the fused AdamW kernel.
    records = [json.loads(line) for line in (out / "knowledge" / "metrics.jsonl").read_text().splitlines()]
    (dtypes,) = [r for r in records if r["event"] == "dtypes"]
    assert dtypes["params"] == dtypes["optimizer"] == ["float32"] and dtypes["fused_adamw"] is True
    # One cache per set, built once (no leftover temporary directory of a second builder); the skill
    # rows phase 1's anchor reads (on by default) are one of them.
    held_out = "validation" if (data / "validation.jsonl").is_file() else "test"
    assert sorted(p.name.split("-")[0] for p in (out / "cache" / "tokens").iterdir()) == \
        ["anchor_rows", "phase1_knowledge", held_out]
