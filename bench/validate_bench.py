"""Benchmark `labtax validate` against the public `instructlab-schema` validator, in the same run.

    .venv/bin/python bench/validate_bench.py            # 10,000 leaves, ~1-2 minutes
    .venv/bin/python bench/validate_bench.py --leaves 2000 --sample 50

What it measures (budgets from issue 2):
  1. `labtax validate` on a generated tree of realistic leaves (default 10,000): wall time, CPU time,
     peak memory of the whole process tree (workers included) -- budget <= 5 s wall, <= 300 MB.
  2. `labtax validate <one file>` (the pre-commit case), interpreter start included -- budget <= 0.5 s.
  3. Baselines, the public package `instructlab-schema` 0.4.2 installed by this script with
     `pip install --target` into its own directory (never a labtax dependency):
       a. its TaxonomyParser exactly as `ilab` runs it (yamllint subprocess per file), on a sample;
       b. the same parser with yamllint absent from PATH (its in-process core: PyYAML + jsonschema).
     Both are timed inside their own loop (no interpreter start), per leaf, and extrapolated to the
     tree; labtax is timed end to end. Ratios are printed -- budget: labtax >= 5x faster.
The machine may be shared: the load average is printed, and CPU times are given next to wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from taxonomy_gen import make_tree

ILAB_VERSION = "0.4.2"


def ensure_tree(base: Path, leaves: int) -> Path:
    tree = base / f"tree-{leaves}-v1"
    stamp = tree / ".complete"
    if not stamp.exists():
        print(f"generating {leaves:,} leaves in {tree} ...", flush=True)
        make_tree(tree, leaves)
        stamp.write_text("ok\n")
    return tree


def ensure_baseline(target: Path) -> Path:
    if not (target / "instructlab" / "schema").is_dir():
        print(f"installing instructlab-schema=={ILAB_VERSION} into {target} (baseline only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--target", str(target), f"instructlab-schema=={ILAB_VERSION}"], check=True)
    return target


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo += [int(c) for c in handle.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds (user+sys of the process tree) and peak tree RSS in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mib": peak / 1024, "maxrss_mib": after.ru_maxrss / 1024}


def baseline(target: Path, files: list[Path], cwd: Path, with_yamllint: bool) -> float:
    """Seconds per leaf of the public validator's own loop."""
    path = f"{target / 'bin'}:{os.environ.get('PATH', '')}" if with_yamllint else str(target / "no-such-dir")
    env = {**os.environ, "PYTHONPATH": str(target), "PATH": path}
    out = subprocess.run([sys.executable, str(HERE / "ilab_baseline.py"), "-"], input="\n".join(map(str, files)),
                         cwd=cwd, env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    seconds = data.pop("_seconds")
    rejected = [p for p, v in data.items() if v["errors"] or v["exception"]]
    if rejected:
        raise SystemExit(f"baseline rejected {len(rejected)} generated leaves, e.g. {rejected[0]}")
    return float(seconds) / len(files)


def labtax_in_process_per_leaf(tree: Path, files: list[Path]) -> float:
    """labtax's per-leaf CPU on one core over the same sample (no process pool, no interpreter start)."""
    sys.path.insert(0, str(ROOT))
    from labtax.taxonomy.config import Config
    from labtax.taxonomy.engine import check_many

    rels = [f.relative_to(tree).as_posix() for f in files]
    check_many(tree, rels[:20], Config(), jobs=1)  # warm the schema cache
    start = time.process_time()
    findings = check_many(tree, rels, Config(), jobs=1)
    assert not findings, findings[:3]
    return (time.process_time() - start) / len(rels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=50, help="leaves for the yamllint baseline (slow)")
    parser.add_argument("--core-sample", type=int, default=1000, help="leaves for the in-process baseline")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "labtax-bench")
    parser.add_argument("--baseline-target", type=Path, default=Path(os.environ.get("LABTAX_ILAB_SCHEMA", Path(sys.prefix) / "ilab-schema")))
    args = parser.parse_args()

    tree = ensure_tree(args.workdir, args.leaves)
    target = ensure_baseline(args.baseline_target)
    labtax = [sys.executable, "-m", "labtax", "validate"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cpus = len(os.sched_getaffinity(0))
    print(f"machine: {cpus} usable CPUs (of {os.cpu_count()}), load average {os.getloadavg()[0]:.1f} (shared machines inflate wall times)")

    full = [run_measured([*labtax, "--taxonomy", str(tree)], env) for _ in range(args.runs)]
    best = min(full, key=lambda r: r["wall"])
    one_file = min(tree.rglob("qna.yaml"))
    single = [run_measured([*labtax, "--taxonomy", str(tree), str(one_file)], env)["wall"] for _ in range(5)]

    files = sorted(tree.rglob("qna.yaml"))
    sample = files[:: max(1, len(files) // args.sample)][: args.sample]
    core_sample = files[:: max(1, len(files) // args.core_sample)][: args.core_sample]
    ilab_full = baseline(target, sample, tree, with_yamllint=True)
    ilab_core = baseline(target, core_sample, tree, with_yamllint=False)
    ours_core = labtax_in_process_per_leaf(tree, core_sample)

    n = len(files)
    print(f"\nlabtax validate, {n:,} leaves ({sum(f.stat().st_size for f in files) / n / 1024:.1f} KiB avg), "
          f"best of {args.runs}:")
    runs = ", ".join(f"{r['wall']:.2f}" for r in full)
    print(f"  wall {best['wall']:.2f} s (runs: {runs}), "
          f"CPU {best['cpu']:.2f} s, peak memory {max(r['peak_mib'] for r in full):.0f} MiB (process tree)")
    print(f"labtax validate <one file>: median {statistics.median(single):.3f} s, best {min(single):.3f} s")
    print(f"instructlab-schema {ILAB_VERSION} TaxonomyParser (yamllint on, {len(sample)} leaves): "
          f"{ilab_full * 1000:.1f} ms/leaf -> {ilab_full * n:.1f} s for {n:,}")
    print(f"instructlab-schema {ILAB_VERSION} in-process core (no yamllint, {len(core_sample)} leaves): "
          f"{ilab_core * 1000:.2f} ms/leaf -> {ilab_core * n:.1f} s for {n:,}")
    print(f"labtax in-process, one core, same {len(core_sample)} leaves: {ours_core * 1000:.2f} ms/leaf")
    print("\nratios (higher = labtax faster):")
    print(f"  end to end vs TaxonomyParser as ilab runs it: {ilab_full * n / best['wall']:.1f}x")
    print(f"  end to end vs its in-process core:            {ilab_core * n / best['wall']:.1f}x")
    print(f"  per leaf on one core vs its in-process core:  {ilab_core / ours_core:.1f}x")
    print("\nbudgets:")
    checks = [
        (f"{n:,} leaves <= 5 s wall", best["wall"] <= 5.0),
        (f"{n:,} leaves <= 5 s CPU / {cpus} cores (what an idle machine gives)", best["cpu"] / cpus <= 5.0),
        ("peak memory <= 300 MB", max(r["peak_mib"] for r in full) * 1.048576 <= 300),
        (">= 5x faster than instructlab-schema (end to end, both baselines)", ilab_core * n / best["wall"] >= 5),
        ("one file <= 0.5 s", statistics.median(single) <= 0.5),
    ]
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'OVER'}] {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
