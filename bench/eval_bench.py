"""Benchmark `labtax eval` scoring (issue 8's budget): 100 leaves x 5 held-out examples, tiny model.

    .venv/bin/python bench/eval_bench.py [--leaves 100] [--examples 5] [--baseline-examples 40]
                                         [--full-head-examples 100] [--check]

Writes a synthetic data directory (seeded; questions of 15-40 words, answers of 30-90 words, like
real seed examples; 10 % of the leaves marked changed) under a temporary folder, then measures in this
same run, with the `tiny` model on this CPU:

  batched    `score_leaves` (the labtax eval path): sorted, right-padded batches under a token
             budget, output head only on answer positions
  full-head  the same batches, but full logits over every position (what a plain forward returns),
             timed on --full-head-examples examples and scaled per example
  baseline   one example per forward pass with full logits (the textbook loop), timed on
             --baseline-examples examples and scaled per example (it is the slow one)
  eval       `run_eval` end to end: leaf selection, both models (tiny vs a saved tiny checkpoint),
             tokenization, scoring, gate, report dict; with --leaves all so every leaf is scored

and prints the per-example cost of each and the ratios against the baseline. Budget: scoring
100 x 5 examples (batched) <= 60 s; `--check` exits 1 when it is over (the default only reports,
since a shared machine's timings are noisy).
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
    parser.add_argument("--baseline-examples", type=int, default=40)
    parser.add_argument("--full-head-examples", type=int, default=100)
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

    t0 = time.perf_counter()
    batched = score_leaves(model, tokenizer, examples)
    t_batched = time.perf_counter() - t0
    sub_full = items[: args.full_head_examples]
    t0 = time.perf_counter()
    score_encoded(model, sub_full, fast_head=False)
    t_full = (time.perf_counter() - t0) * n / len(sub_full)
    sub = items[: args.baseline_examples]
    t0 = time.perf_counter()
    base_scores = score_encoded(model, sub, max_batch=1, fast_head=False)
    t_base = (time.perf_counter() - t0) * n / len(sub)  # scaled to all n examples
    check = score_encoded(model, sub)
    worst = max(abs(a.logprob - b.logprob) / max(1.0, abs(a.logprob)) for a, b in zip(base_scores, check))

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    ckpt = tmp / "candidate"
    model.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    t0 = time.perf_counter()
    report = run_eval(EvalOptions(base="tiny", candidate=str(ckpt), data_dir=data, leaves="all",
                                  thresholds=Thresholds()))
    t_eval = time.perf_counter() - t0

    def line(name: str, seconds: float, note: str = "") -> None:
        print(f"  {name:<10} {seconds:8.2f} s  {1000 * seconds / n:7.2f} ms/example  "
              f"x{t_base / seconds:6.1f} vs baseline  {note}")

    print(f"scoring {n} examples (one model):")
    line("baseline", t_base, f"(one at a time, full logits; timed on {len(sub)} examples and scaled)")
    line("full-head", t_full, f"(batched, full logits; timed on {len(sub_full)} examples and scaled)")
    line("batched", t_batched, "(labtax eval's scorer)")
    print(f"  eval end to end (base + candidate, {len(report['leaves'])} leaves, verdict {report['verdict']}): "
          f"{t_eval:.2f} s")
    print(f"  batched vs baseline max relative difference of an example's log-likelihood: {worst:.2e}")
    mean = sum(s.mean_logprob for s in batched.values()) / len(batched)
    print(f"  mean per-token log-likelihood (untrained tiny): {mean:.4f}")
    budget_ok = t_batched <= 60.0
    print(f"budget: batched scoring of {n} examples <= 60 s: {'ok' if budget_ok else 'OVER'} ({t_batched:.2f} s)")
    return 0 if budget_ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
