"""The fleet kept busy (issue 23 item 6): requests in flight while diff-generate runs many small
leaves, labtax's demand-driven leaf admission against the fixed 4 leaves at a time it replaced,
both in this run against the same slow server.

The real local OpenAI-protocol server (tests/openai_server.py, in this process) answers every stage
after `--delay-ms`; a real git taxonomy of `--leaves` skill leaves of 7 requests each (one first-stage
request for two questions, the fewest calibration items) is generated with `labtax diff-generate`
(in process) at `--concurrency`, once as labtax runs it and once with the admission pinned to 4
leaves (the baseline). Printed: the time-weighted mean in flight over the run / concurrency, wall,
the ratio new / baseline, the CPU flags and the load average.

Budget: mean in flight >= 0.9 x concurrency (exit 1 otherwise).

Usage: .venv/bin/python bench/fleet_bench.py [--leaves 120] [--concurrency 16] [--delay-ms 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after $PYTHONPATH: PYTHONPATH=<other tree> measures that tree
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "sdg"))

from gitrepo import GitRepo
from lab_taxonomy import add_skill, run_cli
from openai_server import OpenAIServer, lab_responder

SMALL = ["--max-requests-per-leaf", "1", "--questions-per-request", "2", "--calibration-examples", "2",
         "--samples-per-leaf", "1", "--seed", "7"]


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " ".join(sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16|avx2)\b", text)))) or "none of amx_bf16/avx512_bf16/avx2"


def one_run(repo: GitRepo, out: Path, concurrency: int, delay_ms: int, baseline: bool) -> tuple[float, float, int]:
    from labtax.sdg import running

    # The baseline: admission pinned to the floor of 4 leaves, as before issue 23.
    saved = running.LEAVES_PER_SLOT
    running.LEAVES_PER_SLOT = 0 if baseline else saved
    try:
        with OpenAIServer(responder=lab_responder(), model="test-model", delay_ms=delay_ms) as server:
            t0 = time.perf_counter()
            code, text = run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", "empty",
                                  "--output", str(out), "--teacher", "openai", "--endpoint", server.base_url,
                                  "--model", "test-model", "--concurrency", str(concurrency), *SMALL])
            wall = time.perf_counter() - t0
            assert code == 0, text[-2000:]
            spans = [(r.started, r.finished) for r in server.requests if r.kind in ("chat", "completions")]
            mean = sum(b - a for a, b in spans) / (max(b for _, b in spans) - min(a for a, _ in spans))
            return mean, wall, len(spans)
    finally:
        running.LEAVES_PER_SLOT = saved


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=int, default=1000)
    args = parser.parse_args()
    print(f"cpu flags: {cpu_flags()}; load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = GitRepo(Path(tmp) / "tax")
        for i in range(args.leaves):
            add_skill(repo, f"compositional_skills/t{i:03d}/leaf", topic=f"t{i:03d}")
        repo.commit(f"{args.leaves} leaves")
        results = {}
        for name, baseline in (("labtax", False), ("baseline: 4 leaves at a time", True)):
            mean, wall, n = one_run(repo, Path(tmp) / name.split(":")[0], args.concurrency, args.delay_ms, baseline)
            results[name] = mean
            print(f"{name:30s} {n} requests  mean in flight {mean:6.2f} / {args.concurrency} "
                  f"= {mean / args.concurrency:.2f}  wall {wall:6.1f} s")
    ratio = results["labtax"] / results["baseline: 4 leaves at a time"]
    print(f"labtax / baseline mean in flight: {ratio:.2f}x; load average at end: {os.getloadavg()[0]:.2f}")
    ok = results["labtax"] >= 0.9 * args.concurrency
    print("budget (mean in flight >= 0.9 x concurrency):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
