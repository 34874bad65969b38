"""Benchmark `labtax diff-generate` on a 1,000-leaf taxonomy (issue 5 budgets), with baselines measured
in the same run:

  no-op run          diff-generate with nothing changed: wall time (budget <= 2 s), requests (must be 0).
                     Baseline: `labtax diff` on the same refs (process start + the one git diff).
  one changed leaf   requests sent, and whether every one carries only that leaf's seeds.
  set rebuild        rebuilding the training sets from 1,000 leaves x 100 samples (budget <= 2 s).
                     Baseline: json-decoding and re-encoding the same samples once (the least any
                     rebuild that rewrites them must do).

The store is filled by computing each leaf's real content key (the planner, as diff-generate does)
and writing 100 messages-format samples per key, so the rebuild works on the full-size data without
generating 100,000 samples through a teacher. Everything else is the real command, in a subprocess,
against the real OpenAI-protocol test server (tests/openai_server.py) counting requests.

    .venv/bin/python bench/diff_generate_bench.py [--leaves 1000] [--samples 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "sdg"))

from gitrepo import GitRepo
from lab_taxonomy import add_knowledge, add_skill, prompts_of
from openai_server import OpenAIServer, lab_responder

from labtax.data import MANIFEST
from labtax.mix import mix
from labtax.mix.held_out import seed_test_samples
from labtax.sdg.ledger import Ledger
from labtax.sdg.output_dir import LEAVES_DIR, LEDGER_FILE
from labtax.sdg.planning import plan_run
from labtax.sdg.running import rebuild
from labtax.sdg.settings import GenerationSettings
from labtax.sdg.store import LeafData, LeafStore
from labtax.taxonomy.leaves import parse_leaf

SAMPLES_PER_LEAF_SETTING = 2
SEED = 7


def labtax(*argv: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "labtax", *argv], capture_output=True, text=True, check=False)
    return time.perf_counter() - t, proc


def teacher(server: OpenAIServer) -> list[str]:
    return ["--teacher", "openai", "--endpoint", server.base_url, "--model", "test-model",
            "--samples-per-leaf", str(SAMPLES_PER_LEAF_SETTING), "--seed", str(SEED)]


_STEMS = ("amber", "harbor", "lantern", "thistle", "meadow", "glacier", "falcon", "willow", "quartz", "ember",
          "canyon", "orchid", "tundra", "beacon", "cinder", "delta")


def _words(seed: str, n: int) -> list[str]:
    """n words of a 65,536-word made-up vocabulary, picked by a hash (a real taxonomy's breadth)."""
    d = hashlib.sha256(seed.encode()).digest()
    return [f"{_STEMS[x % 16]}{x // 16}" for x in (int.from_bytes(d[2 * k:2 * k + 2], "big") for k in range(n))]


def fake_samples(path: str, kind: str, n: int) -> list[dict[str, object]]:
    """Messages-format samples of a realistic size (~600 bytes) for the rebuild measurement."""
    out = []
    for i in range(n):
        # Distinct wording per sample, as generated data is after the pipelines' own dedup (a template
        # differing only in a number would be one near-duplicate repeated, and mixing drops those).
        topic = " ".join(_words(f"{path}-{i}", 6))
        # The leaf's path is in the answer, not the question: real questions of two leaves do not share
        # their leaf's folder names.
        q = f"Question {i}: how would you describe the {topic} in a short paragraph?"
        a = f"Answer {i} ({path}): " + " ".join(f"the {w} is plain, with a few details." for w in _words(f"{path}-{i}-a", 10))
        meta: dict[str, object] = {"question": q, "answer": a, "pipeline": kind, "seed": SEED}
        user = q
        if kind == "knowledge":
            meta["context"] = f"Chunk {i % 4} of the document of {path}. " * 3
            user = f"{meta['context']}\n\n{q}"
        out.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": a}],
                    "metadata": meta, "unmask": kind == "knowledge"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leaves", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--knowledge-every", type=int, default=20, help="every N-th leaf is a knowledge leaf")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labtax-dg-bench-"))
    repo = GitRepo(tmp / "repo")
    out = tmp / "out"

    t = time.perf_counter()
    for i in range(args.leaves):
        if args.knowledge_every and i % args.knowledge_every == 0:
            add_knowledge(repo, f"knowledge/area{i // 100:02d}/topic{i:04d}")
        else:
            add_skill(repo, f"compositional_skills/area{i // 100:02d}/topic{i:04d}", topic=f"topic{i:04d}")
    base = repo.commit("taxonomy")
    print(f"setup: {args.leaves} leaves committed in {time.perf_counter() - t:.1f} s"
          + (f" ({tmp} kept)" if os.environ.get("LABTAX_BENCH_KEEP") else ""))

    # Fill the store with full-size data under the real keys (see the module docstring).
    t = time.perf_counter()
    settings = GenerationSettings(samples_per_leaf=SAMPLES_PER_LEAF_SETTING, seed=SEED)
    store = LeafStore(out / LEAVES_DIR)
    mix_settings = mix.MixSettings(seed=SEED)
    with Ledger(out / LEDGER_FILE) as ledger:
        plan = plan_run(repo.root, out, base="empty", head="HEAD", model_id="openai:test-model",
                        settings=settings, mix_settings=mix_settings, ledger=ledger, store=store)
        ledger.update_memo(plan.memo_updates)
    for lp in plan.leaves:
        assert lp.key is not None
        leaf = parse_leaf(lp.path, (repo.root / lp.path).read_bytes())
        prepared = mix.prepare_leaf(lp.kind, fake_samples(lp.path, lp.kind, args.samples),
                                    seed_test_samples(leaf))
        store.put(LeafData(lp.key, prepared.samples, prepared.test, {"kind": lp.kind, "tokens": 1000, "seconds": 1.0},
                           prepared.index))
    print(f"setup: store filled ({args.leaves} x {args.samples} samples) in {time.perf_counter() - t:.1f} s")

    with OpenAIServer(lab_responder()) as server:
        dg = ["diff-generate", "--taxonomy", str(repo.root), "--output", str(out), *teacher(server)]
        # First run: builds the sets (every key is in the store: zero requests).
        first_s, proc = labtax(*dg, "--base", "empty", "--head", "HEAD")
        assert proc.returncode == 0, proc.stderr
        assert server.count() == 0, "all keys were stored: the first run must not call the teacher"

        # 1. No-op: nothing changed between HEAD and HEAD.
        diff_s = min(labtax("diff", "--taxonomy", str(repo.root), "--base", base, "--head", "HEAD")[0]
                     for _ in range(3))
        runs = [labtax(*dg, "--base", base, "--head", "HEAD") for _ in range(3)]
        assert all(p.returncode == 0 and "nothing to generate" in p.stdout for _, p in runs), runs[0][1].stderr
        noop_s = min(s for s, _ in runs)
        print(f"no-op diff-generate, {args.leaves} leaves: {noop_s:.2f} s wall (budget 2 s), "
              f"{server.count()} requests; baseline `labtax diff` {diff_s:.2f} s; ratio {noop_s / diff_s:.2f}x")

        # 2. One changed leaf of 1,000.
        target = "compositional_skills/area00/topic0007/qna.yaml"
        text = (repo.root / target).read_text().replace("way 3.", "a brand new way.")
        repo.write(target, text)
        head = repo.commit("change one leaf")
        one_s, proc = labtax(*dg, "--base", base, "--head", head)
        assert proc.returncode == 0, proc.stderr
        prompts = prompts_of(server)
        only_it = all("topic0007" in p for p in prompts) and not any(
            f"topic{i:04d}" in p for p in prompts for i in range(args.leaves) if i != 7)
        print(f"one changed leaf of {args.leaves}: {server.count()} requests, all carrying only its seeds: "
              f"{only_it}; {one_s:.2f} s wall (includes rebuilding the sets)")
        assert only_it and server.count() > 0

    # 3. Rebuilding the sets: in-process, from the store, inputs changed so nothing is skipped.
    with Ledger(out / LEDGER_FILE) as ledger:
        plan = plan_run(repo.root, out, base=base, head=head, model_id="openai:test-model", settings=settings,
                        mix_settings=mix_settings, ledger=ledger, store=store)
    (out / MANIFEST).unlink()
    t = time.perf_counter()
    manifest, rebuilt = rebuild(plan, out, store, mix_settings)
    rebuild_s = time.perf_counter() - t
    assert rebuilt
    n = sum(info["samples"] for info in manifest["sets"].values())
    # Baseline: decode and re-encode every stored sample once.
    raws = [p.read_bytes() for p in sorted((out / LEAVES_DIR).glob("*/*.jsonl"))]
    t = time.perf_counter()
    total = 0
    for raw in raws:
        for line in raw.splitlines()[1:]:
            total += len(json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True))
    base_s = time.perf_counter() - t
    size = sum(info["bytes"] for info in manifest["sets"].values())
    print(f"set rebuild, {args.leaves} leaves x {args.samples} samples: {rebuild_s:.2f} s (budget 2 s), "
          f"{n} samples, {size / 1e6:.0f} MB; baseline decode+encode {base_s:.2f} s; "
          f"ratio {rebuild_s / base_s:.2f}x")
    # The same through the command: a no-op run whose sets must be rebuilt (manifest gone).
    (out / MANIFEST).unlink()
    with OpenAIServer(lab_responder()) as server:
        cli_s, proc = labtax("diff-generate", "--taxonomy", str(repo.root), "--output", str(out), "--base", head,
                             "--head", head, *teacher(server))
        assert proc.returncode == 0 and server.count() == 0, proc.stderr
    print(f"no-op diff-generate that rebuilds the sets: {cli_s:.2f} s wall")
    print(f"first run (sets built from a full store): {first_s:.2f} s wall")
    if os.environ.get("LABTAX_BENCH_KEEP") is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
