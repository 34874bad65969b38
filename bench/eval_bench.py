"""Benchmark `labtax eval` (issue 14's budgets): 100 leaves x 10 items (5 closed-book multiple-choice
items of 4 options + 5 reference answers), tiny model, end to end; and the embedded model on 10 leaves.

    .venv/bin/python bench/eval_bench.py [--leaves 100] [--mc 5] [--examples 5] [--subset 100]
                                         [--rounds 3] [--small-leaves 10] [--no-small] [--check]

Writes a synthetic data directory (seeded; questions of 15-40 words, answers of 30-90 words, options
of 4-12 words; 10 % of the leaves marked changed, so the rest are the controls) under a temporary
folder, then, on this CPU, in this same run:

  1. ratios, on the items of the first --subset leaves (reference answers and every option), the
     scoring ways interleaved for --rounds rounds, best round of each (a shared machine's load comes
     and goes):
       baseline   one row per scored sequence, one per forward pass, full logits (the textbook loop)
       full-head  sorted, right-padded batches under a token budget, full logits at every position
       batched    the same batches, output head only on answer positions (labtax eval until now)
       shared     prefix-shared packed rows (a question's prompt once for all its options, the
                  system header once per row), head only on answer positions (labtax eval's scorer)
  2. the budget figure: `run_eval` end to end, `--leaves all`: both models (tiny, seed 42, vs a saved
     tiny of another seed), every option of every multiple-choice item and every reference answer
     scored, bootstrap intervals with controls, the report; printed as a ratio to the 60 s budget;
  3. unless --no-small, the same on --small-leaves leaves with the 135M model (`embedded-small`, or
     `embedded` where that is still the 135M one) against a saved copy of it: ratio to 120 s; and,
     unless --no-old, the old path beside it: one model's items scored one row per sequence
     (`batched`) and prefix-shared (`shared`), the ratio of the two.

`--check` exits 1 when a budget is missed (the default only reports: a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def make_data(root: Path, leaves: int, examples: int, mc: int = 0, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows, entries = [], []
    for i in range(leaves):
        path = f"knowledge/bench/leaf_{i:04d}/qna.yaml"
        entries.append({"path": path, "key": f"k{i}", "status": "generated", "changed": i % 10 == 0})
        for _ in range(examples):
            rows.append({
                "messages": [{"role": "user", "content": _text(rng, 15, 40) + "?"},
                             {"role": "assistant", "content": _text(rng, 30, 90) + "."}],
                "metadata": {"leaf": path, "kind": "knowledge", "source": "seed"}, "unmask": False,
            })
        for _ in range(mc):
            options = list(dict.fromkeys(_text(rng, 4, 12) + "." for _ in range(4)))
            rows.append({
                "messages": [{"role": "user", "content": _text(rng, 10, 25) + "?"},
                             {"role": "assistant", "content": options[0]}],
                "choices": options, "answer_index": 0,
                "metadata": {"leaf": path, "kind": "knowledge", "source": "mc"}, "unmask": False,
            })
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "manifest.json").write_text(json.dumps({"base": "0" * 40, "head": None, "leaves": entries}))
    return root


def _small_name() -> str:
    """The 135M model's name: `embedded-small` where the 1.5B teacher took `embedded`."""
    from labtax import models

    return getattr(models, "EMBEDDED_SMALL", "embedded")


def scored_items(tokenizer: Any, examples: dict[str, Any], leaves: int) -> list[Any]:
    """The token sequences `labtax eval` scores for the first `leaves` leaves: each reference answer
    and each option of each multiple-choice item."""
    from labtax.eval.encoding import encode
    from labtax.eval.scorer import choice_examples

    chosen = [ex for exs in list(examples.values())[:leaves] for ex in exs]
    flat = [ex for ex in chosen if not ex.is_choice] + [o for ex in chosen if ex.is_choice for o in choice_examples(ex)]
    return [encode(tokenizer, ex) for ex in flat]


def time_eval(base: str, candidate: Path, data: Path) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds, report) of one end-to-end run_eval over every leaf."""
    from labtax.eval.run import EvalOptions, run_eval

    w0, c0 = time.perf_counter(), time.process_time()
    report = run_eval(EvalOptions(base=base, candidate=str(candidate), data_dir=data, leaves="all", device="cpu"))
    return time.perf_counter() - w0, time.process_time() - c0, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=100)
    parser.add_argument("--examples", type=int, default=5, help="reference answers per leaf")
    parser.add_argument("--mc", type=int, default=5, help="multiple-choice items per leaf (4 options each)")
    parser.add_argument("--subset", type=int, default=10, help="leaves whose items are timed for the ratios")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-leaves", type=int, default=10)
    parser.add_argument("--no-small", action="store_true", help="skip the 135M model's run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-tiny", action="store_true", help="only the 135M model's run")
    parser.add_argument("--no-old", action="store_true", help="skip the 135M model's old-path comparison")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    from labtax.eval.data import read_test_set
    from labtax.eval.scorer import score_encoded
    from labtax.models import load_model, load_tokenizer

    hf_logging.disable_progress_bar()
    tmp = Path(tempfile.mkdtemp(prefix="labtax-eval-bench-"))
    data = make_data(tmp / "data", args.leaves, args.examples, args.mc)
    model, tokenizer = load_model("tiny"), load_tokenizer("tiny")
    examples = read_test_set(data / "test.jsonl")
    n_mc = sum(1 for exs in examples.values() for ex in exs if ex.is_choice)
    print(f"data: {len(examples)} leaves x {args.examples + args.mc} items = {len(examples) * args.examples} "
          f"reference answers + {n_mc} multiple-choice items ({4 * n_mc} options); torch threads "
          f"{torch.get_num_threads()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    sub = [] if args.skip_tiny else scored_items(tokenizer, examples, args.subset)
    ways = {
        "baseline": lambda: score_encoded(model, sub, max_batch=1, fast_head=False, share_prefixes=False),
        "full-head": lambda: score_encoded(model, sub, fast_head=False, share_prefixes=False),
        "batched": lambda: score_encoded(model, sub, share_prefixes=False),
        "shared": lambda: score_encoded(model, sub),
    }
    best = {name: float("inf") for name in ways}
    results = {}
    for _ in range(0 if args.skip_tiny else args.rounds):
        for name, run in ways.items():
            t0 = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
    if args.skip_tiny:
        return _small(args, tmp, ok=True)
    worst = max(abs(a.logprob - b.logprob) / max(1.0, abs(a.logprob))
                for a, b in zip(results["baseline"], results["shared"]))
    print(f"ratios on {len(sub)} scored sequences of {args.subset} leaves ({sum(i.length for i in sub):,} tokens), "
          f"best of {args.rounds} interleaved rounds:")
    notes = {"baseline": "one sequence per forward, full logits", "full-head": "batched, full logits",
             "batched": "batched, head on answer positions (the old labtax eval)",
             "shared": "prefix-shared rows, head on answer positions (labtax eval)"}
    for name, seconds in best.items():
        print(f"  {name:<10} {seconds:7.2f} s  {1000 * seconds / len(sub):7.1f} ms/sequence  "
              f"x{best['baseline'] / seconds:5.1f} vs baseline  x{best['batched'] / seconds:4.2f} vs batched  "
              f"({notes[name]})")
    print(f"  max relative difference of a sequence's log-likelihood, shared vs baseline: {worst:.1e}")

    ok = True
    ckpt = tmp / "candidate"
    load_model("tiny", seed=7).save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    wall, cpu, report = time_eval("tiny", ckpt, data)
    ok &= wall <= 60.0
    print(f"budget: tiny, run_eval end to end, {len(report.leaves)} leaves x {args.examples + args.mc} items, "
          f"base + candidate: {wall:.2f} s wall ({cpu:.2f} s CPU) = {wall / 60.0:.2f} of the 60 s budget; "
          f"verdicts {dict(report.verdicts)}")

    return _small(args, tmp, ok) if not args.no_small else (0 if ok or not args.check else 1)


def _small(args: argparse.Namespace, tmp: Path, ok: bool) -> int:
    import os

    from labtax.models import load_model, load_tokenizer

    name = _small_name()
    small = make_data(tmp / "small", args.small_leaves, args.examples, args.mc, seed=1)
    copy = tmp / "small-candidate"
    load_model(name).save_pretrained(copy)
    load_tokenizer(name).save_pretrained(copy)
    wall, cpu, report = time_eval(name, copy, small)
    ok &= wall <= 120.0
    print(f"budget: {name} (135M), run_eval end to end, {len(report.leaves)} leaves x "
          f"{args.examples + args.mc} items, base + candidate: {wall:.2f} s wall ({cpu:.2f} s CPU) = "
          f"{wall / 120.0:.2f} of the 120 s budget")
    if not args.no_old:
        from labtax.eval.data import read_test_set
        from labtax.eval.scorer import score_encoded

        model, items = load_model(name), scored_items(load_tokenizer(name), read_test_set(small / "test.jsonl"),
                                                      args.small_leaves)
        took = {}
        for share in (False, True):
            w0, c0 = time.perf_counter(), time.process_time()
            score_encoded(model, items, share_prefixes=share)
            took[share] = (time.perf_counter() - w0, time.process_time() - c0)
        print(f"old path, {name}, one model's {len(items)} sequences: one row each {took[False][0]:.2f} s wall "
              f"({took[False][1]:.2f} s CPU), prefix-shared {took[True][0]:.2f} s wall ({took[True][1]:.2f} s CPU) "
              f"= x{took[False][0] / took[True][0]:.2f} wall, x{took[False][1] / took[True][1]:.2f} CPU")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok or not args.check else 1

if __name__ == "__main__":
    sys.exit(main())
