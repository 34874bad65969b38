"""Benchmark `labtax eval` scoring (issue 8's budget): 100 leaves x 5 held-out examples, tiny model.

    .venv/bin/python bench/eval_bench.py [--leaves 100] [--examples 5] [--subset 100] [--rounds 3]
                                         [--e2e] [--check]

Writes a synthetic data directory (seeded; questions of 15-40 words, answers of 30-90 words, like
real seed examples; 10 % of the leaves marked changed) under a temporary folder, then, with the
`tiny` model on this CPU, in this same run:

  1. ratios, on the same --subset examples, the three ways interleaved for --rounds rounds, best
     round of each (a shared machine's load comes and goes; the best round is the least disturbed):
       baseline   one example per forward pass, full logits (the textbook loop)
       full-head  sorted, right-padded batches under a token budget, full logits at every position
       batched    the same batches, output head only on answer positions (labtax eval's scorer)
  2. the budget figure: `score_leaves` (batched) on all leaves x examples, once;
  3. with --e2e, `run_eval` end to end: leaf selection, both models (tiny vs a saved tiny
     checkpoint), tokenization, scoring, gate, report; --leaves all so every leaf is scored.

Budget: scoring 100 x 5 examples (batched) <= 60 s; `--check` exits 1 when it is over (the default
only reports, since a shared machine's timings are noisy).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_WORD_TEXT = (
    "the a of and to in is that for it as with was on by at from this be are or an which how why what "
    "river mountain harvest lantern copper violin orbit meadow glacier harbor falcon ember prism canyon "
    "thistle beacon quartz willow tide saffron compass marble cedar nebula orchard pebble summit velvet "
    "anchor bramble cobalt dune fern granite hollow ivory jasper kelp lagoon mosaic explain describe "
    "write poem story summary list steps reason because therefore however example data model answer"
)
WORDS = _WORD_TEXT.split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def make_data(root: Path, leaves: int, examples: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows, entries = [], []
    for i in range(leaves):
        path = f"compositional_skills/bench/leaf_{i:04d}/qna.yaml"
        entries.append({"path": path, "key": f"k{i}", "status": "generated", "changed": i % 10 == 0})
        for _ in range(examples):
            rows.append({
                "messages": [{"role": "user", "content": _text(rng, 15, 40) + "?"},
                             {"role": "assistant", "content": _text(rng, 30, 90) + "."}],
                "metadata": {"leaf": path, "kind": "skill", "source": "seed"}, "unmask": False,
            })
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "manifest.json").write_text(json.dumps({"base": "0" * 40, "head": None, "leaves": entries}))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=100)
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--subset", type=int, default=100, help="examples timed for the ratios")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--e2e", action="store_true", help="also time run_eval end to end (2 models)")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from labtax.eval.data import read_test_set
    from labtax.eval.gate import Thresholds
    from labtax.eval.run import EvalOptions, run_eval
    from labtax.eval.scorer import encode, score_encoded, score_leaves
    from labtax.models import load_model, load_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="labtax-eval-bench-"))
    data = make_data(tmp / "data", args.leaves, args.examples)
    model, tokenizer = load_model("tiny"), load_tokenizer("tiny")
    examples = read_test_set(data / "test.jsonl")
    n = sum(len(v) for v in examples.values())
    items = [encode(tokenizer, ex) for exs in examples.values() for ex in exs]
    tokens = sum(i.length for i in items)
    scored = sum(len(i.target_ids) for i in items)
    print(f"data: {len(examples)} leaves x {args.examples} examples = {n} examples, {tokens:,} tokens "
          f"({scored:,} scored answer tokens); torch threads {torch.get_num_threads()}")

    sub = items[: args.subset]
    ways = {
        "baseline": lambda: score_encoded(model, sub, max_batch=1, fast_head=False),
        "full-head": lambda: score_encoded(model, sub, fast_head=False),
        "batched": lambda: score_encoded(model, sub),
    }
    best = {name: float("inf") for name in ways}
    results = {}
    for _ in range(args.rounds):
        for name, run in ways.items():
            t0 = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
    worst = max(abs(a.logprob - b.logprob) / max(1.0, abs(a.logprob))
                for a, b in zip(results["baseline"], results["batched"]))
    print(f"ratios on {len(sub)} examples ({sum(i.length for i in sub):,} tokens), best of {args.rounds} "
          "interleaved rounds:")
    notes = {"baseline": "one example per forward, full logits", "full-head": "batched, full logits",
             "batched": "batched, head on answer positions (labtax eval)"}
    for name, seconds in best.items():
        print(f"  {name:<10} {seconds:7.2f} s  {1000 * seconds / len(sub):7.1f} ms/example  "
              f"x{best['baseline'] / seconds:5.1f} vs baseline  ({notes[name]})")
    print(f"  max relative difference of an example's log-likelihood, batched vs baseline: {worst:.1e}")

    t0 = time.perf_counter()
    batched = score_leaves(model, tokenizer, examples)
    t_batched = time.perf_counter() - t0
    mean = sum(s.mean_logprob for s in batched.values()) / len(batched)
    print(f"all {n} examples, batched: {t_batched:.2f} s ({1000 * t_batched / n:.1f} ms/example); "
          f"mean per-token log-likelihood (untrained tiny) {mean:.4f}")

    if args.e2e:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        ckpt = tmp / "candidate"
        model.save_pretrained(ckpt)
        tokenizer.save_pretrained(ckpt)
        t0 = time.perf_counter()
        report = run_eval(EvalOptions(base="tiny", candidate=str(ckpt), data_dir=data, leaves="all",
                                      thresholds=Thresholds()))
        print(f"run_eval end to end (base + candidate, {len(report['leaves'])} leaves): "
              f"{time.perf_counter() - t0:.2f} s")
    budget_ok = t_batched <= 60.0
    print(f"budget: batched scoring of {n} examples <= 60 s: {'ok' if budget_ok else 'OVER'} ({t_batched:.2f} s)")
    return 0 if budget_ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
