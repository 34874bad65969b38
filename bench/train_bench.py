"""Training benchmark: padding share, tokens/s against a naive padded loop and against TRL, peak RSS.

Run: .venv/bin/python bench/train_bench.py         (sections 1-4: about 8 minutes on 2 CPU cores)
     .venv/bin/python bench/train_bench.py --trl   (section 4 only)
     .venv/bin/python bench/train_bench.py --no-trl (sections 1-3: 1-2 minutes)
     .venv/bin/python bench/train_bench.py --lora   (section 5 only: about 5 minutes)

Every figure is a ratio against a baseline measured in the same run on the same data:
  1. real-token share of packed micro-batches vs naive per-batch padding (fixed batches of k samples,
     padded to their longest sample), on a realistic mix of short questions and long answers;
  2. training tokens/s of labtax's loop (packed rows, loss-token-only LM head) vs a naive loop
     (padded batches, full logits, HF labels loss), same tiny model, same samples, same optimizer;
  3. peak RSS of a tiny-model training subprocess on the dataset at 1x and 10x size;
  4. `labtax train` against TRL's SFTTrainer (BFD packing, padding-free, completion-only loss) on
     SmolLM2-135M: tokens/s, peak RSS and the loss curves side by side (bench/train_trl.py);
  5. `labtax train --lora-rank 16` against full fine-tuning of SmolLM2-135M on the same data, one
     thread each, in separate processes: training tokens per CPU-second (steps 2..N, the first is
     warm-up) and the process's peak RSS.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from labtax.models import load_model, load_tokenizer
from labtax.train.data import IGNORE, tokenize_file
from labtax.train.packing import collate, epoch_order, padded_bins, plan_step

WORDS = ["the", "council", "approved", "a", "new", "bridge", "over", "the", "river", "in", "spring", "after", "floods", "damaged", "the", "old", "crossing", "and", "engineers", "measured", "the", "current", "records", "show", "that", "trade", "grew", "along", "the", "valley", "while", "farmers", "moved", "to", "the", "towns"]
CAPACITY = 4096          # --max-tokens-per-batch
EFFECTIVE_BATCH = 16     # samples per optimizer step
NAIVE_MICRO = 4          # samples per padded micro-batch in the naive loop


def realistic_samples(n: int, seed: int = 0) -> list[dict[str, object]]:
    """Short questions; answers either short (skills-like) or long (knowledge-like)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        long = rng.random() < 0.4
        answer_words = rng.randint(150, 700) if long else rng.randint(5, 60)
        out.append({"messages": [
            {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(6, 30))) + "?"},
            {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=answer_words))}],
            "metadata": {"leaf": "knowledge/bench"}, "unmask": False})
    return out


def write(path: Path, samples: list[dict[str, object]], times: int = 1) -> Path:
    with path.open("w") as f:
        for _ in range(times):
            for s in samples:
                f.write(json.dumps(s) + "\n")
    return path


def padding_figures(lengths: np.ndarray) -> None:
    order = epoch_order(len(lengths), 0, 0)
    real = padded = rows_packed = budget = bins_real = bins_padded = 0
    for start in range(0, len(order), EFFECTIVE_BATCH):
        step = order[start:start + EFFECTIVE_BATCH]
        for k in range(0, len(step), NAIVE_MICRO):  # naive: fixed batches, padded to the longest
            mb = lengths[step[k:k + NAIVE_MICRO]]
            real += int(mb.sum())
            padded += int(mb.max()) * len(mb)
        plan = plan_step(step, lengths, np.ones_like(lengths), CAPACITY)
        rows_packed += len(plan.micro_batches[0])
        budget += len(plan.micro_batches[0]) * CAPACITY
        for b in padded_bins([int(i) for i in step], lengths, CAPACITY):  # fallback layout
            bins_real += int(lengths[b].sum())
            bins_padded += int(lengths[b].max()) * len(b)
    print(f"samples {len(lengths)}, tokens {int(lengths.sum()):,}, length p10/p50/p90/max "
          f"{np.percentile(lengths, 10):.0f}/{np.percentile(lengths, 50):.0f}/"
          f"{np.percentile(lengths, 90):.0f}/{lengths.max()}")
    print("real-token share of micro-batches (higher is better):")
    print(f"  labtax packed rows (padding-free)      {100.0:6.2f} %   (budget fill {100 * real / budget:.1f} %, "
          f"{rows_packed} rows)")
    print(f"  labtax padded bins (fallback layout)   {100 * bins_real / bins_padded:6.2f} %")
    print(f"  naive per-batch padding ({NAIVE_MICRO}/batch)      {100 * real / padded:6.2f} %   "
          f"-> padding share {100 * (1 - real / padded):.1f} % vs 0.0 %")


def naive_steps(model: torch.nn.Module, data: object, steps: int, pad_id: int) -> tuple[int, float]:
    """The textbook loop: padded batches, full logits, mean of per-batch means."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = epoch_order(len(data), 1, 0)  # type: ignore[arg-type]
    tokens, t0 = 0, time.perf_counter()
    for s in range(steps):
        step = order[s * EFFECTIVE_BATCH:(s + 1) * EFFECTIVE_BATCH]
        for k in range(0, len(step), NAIVE_MICRO):
            samples = [data.sample(int(i)) for i in step[k:k + NAIVE_MICRO]]  # type: ignore[attr-defined]
            batch = collate(samples, packed=False, pad_id=pad_id)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE)
            labels = torch.cat([labels[:, :1], batch["targets"][:, :-1]], dim=1)  # HF shifts internally
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                        use_cache=False)
            (out.loss / (EFFECTIVE_BATCH // NAIVE_MICRO)).backward()
            tokens += int(batch["attention_mask"].sum())
        opt.step()
        opt.zero_grad()
    return tokens, time.perf_counter() - t0


def labtax_steps(model: torch.nn.Module, data: object, steps: int, pad_id: int) -> tuple[int, float]:
    from labtax.train.lm_loss import TrainModule
    from labtax.train.loop import micro_batch_loss
    from labtax.train.parallel import Runtime

    model = TrainModule(model)

    runtime = Runtime(torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = epoch_order(len(data), 1, 0)  # type: ignore[arg-type]
    tokens, t0 = 0, time.perf_counter()
    for s in range(steps):
        plan = plan_step(order[s * EFFECTIVE_BATCH:(s + 1) * EFFECTIVE_BATCH], data.lengths,  # type: ignore[attr-defined]
                         data.loss_counts, CAPACITY)  # type: ignore[attr-defined]
        for mb in plan.micro_batches[0]:
            loss, _ = micro_batch_loss(model, collate([data.sample(i) for i in mb], True, pad_id), runtime)  # type: ignore[attr-defined]
            (loss / plan.loss_tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        tokens += plan.tokens
    return tokens, time.perf_counter() - t0


RSS_CHILD = r"""
import resource, sys, json, torch
torch.set_num_threads(1)
from pathlib import Path
from labtax.train.config import load_config
from labtax.train.phases import run_training
data, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = load_config(overrides={"max_steps": 2, "effective_batch": 16, "max_tokens_per_batch": 4096,
                             "max_seq_len": 4096, "warmup_steps": 1, "lr": 1e-4})
run_training(data, "tiny", out, ["knowledge"], cfg, select="last", log=lambda s: None)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's size.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(int(hwm[0].split()[1]) // 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_rss(data_dir: Path, out: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", RSS_CHILD, str(data_dir), str(out)], capture_output=True,
                         text=True, env=env, check=True)
    return int(res.stdout.strip().splitlines()[-1])


LORA_STEPS = 4  # short: the whole section stays near one CPU-minute per run
LORA_BATCH = 4
LORA_CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from pathlib import Path
from labtax.train.config import load_config
from labtax.train.lora import LoraSettings
from labtax.train.phases import run_training
data, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
marks = []
def log(line):
    if "] step " in line:
        marks.append(time.process_time())  # CPU seconds of this process when each step ended
cfg = load_config(overrides={"max_steps": int(sys.argv[4]), "effective_batch": int(sys.argv[5]), "max_tokens_per_batch": 2048,
                             "max_seq_len": 2048, "warmup_steps": 1, "lr": 1e-4})
lora = LoraSettings(rank=16, alpha=32, dropout=0.0) if mode == "lora" else None
run_training(data, "embedded-small", out, ["knowledge"], cfg, select="last", log=log, report_to=[], lora=lora)
steps = [json.loads(l) for l in (out / "knowledge" / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in steps if r.get("event") == "step"]
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps({"tokens": sum(r["tokens"] for r in steps[1:]), "cpu": marks[-1] - marks[0],
                  "loss": [r["loss"] for r in steps], "rss_mib": int(hwm[0].split()[1]) // 1024}))
"""


def lora_vs_full() -> None:
    """Section 5: LoRA and full fine-tuning of SmolLM2-135M, same data, same steps, one thread each."""
    tmp = Path(tempfile.mkdtemp(prefix="labtax-lora-bench-"))
    rng = random.Random(1)
    samples = [{"messages": [
        {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(6, 20))) + "?"},
        {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))}],
        "metadata": {"leaf": "knowledge/bench"}, "unmask": False} for _ in range(LORA_BATCH * LORA_STEPS)]
    data = tmp / "data"
    data.mkdir()
    write(data / "phase1_knowledge.jsonl", samples)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LABTAX_TORCH_THREADS": "1", "PYTHONPATH": str(REPO)}
    print(f"== 5. LoRA (rank 16, every linear layer of the blocks) vs full fine-tuning, SmolLM2-135M, CPU, "
          f"1 thread, {LORA_STEPS} steps of {LORA_BATCH} samples")
    figures = {}
    for mode in ("full", "lora"):
        res = subprocess.run([sys.executable, "-c", LORA_CHILD, str(data), str(tmp / mode), mode, str(LORA_STEPS), str(LORA_BATCH)],
                             capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            raise SystemExit(f"{mode} run failed:\n{res.stderr[-3000:]}")
        figures[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        f = figures[mode]
        print(f"  {mode:5s} {f['tokens'] / f['cpu']:8,.0f} tokens/CPU-s  peak RSS {f['rss_mib']:5d} MiB  "
              f"loss {' '.join(f'{x:.3f}' for x in f['loss'])}")
    full, lora = figures["full"], figures["lora"]
    print(f"  LoRA/full: {(lora['tokens'] / lora['cpu']) / (full['tokens'] / full['cpu']):.2f}x tokens per CPU-second, "
          f"{lora['rss_mib'] / full['rss_mib']:.2f}x peak RSS")
    load = os.getloadavg()
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"amx_bf16", "avx512_bf16", "avx2"})
    print(f"  cpu flags {' '.join(flags)}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def main() -> None:
    if "--trl" in sys.argv:
        return peer()
    if "--lora" in sys.argv:
        return lora_vs_full()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="labtax-train-bench-"))
    tokenizer = load_tokenizer("tiny")
    samples = realistic_samples(400)
    data = tokenize_file(write(tmp / "mix.jsonl", samples), tokenizer, 4096, tmp / "cache")

    print("== 1. padding")
    padding_figures(data.lengths)

    print("== 2. training throughput, tiny model, CPU, 1 thread (real tokens/s)")
    steps = 2
    pad_id = tokenizer.pad_token_id
    results = {}
    for name, fn in (("naive padded loop", naive_steps), ("labtax packed loop", labtax_steps)):
        model = load_model("tiny", seed=0)
        model.train()
        fn(model, data, 1, pad_id)  # warm-up step, not timed
        real_tokens, seconds = fn(model, data, steps, pad_id)
        results[name] = real_tokens / seconds
        print(f"  {name:22s} {results[name]:10,.0f} tok/s")
    ratio = results["labtax packed loop"] / results["naive padded loop"]
    print(f"  speed-up {ratio:.2f}x (budget >= 1.5x)")

    print("== 3. peak RSS of a tiny-model training run (2 steps) vs dataset size")
    rss = {}
    for times in (1, 10):
        d = tmp / f"data{times}"
        d.mkdir()
        write(d / "phase1_knowledge.jsonl", samples, times=times * 2)
        rss[times] = peak_rss(d, tmp / f"out{times}")
        print(f"  {times:2d}x dataset ({len(samples) * 2 * times:6d} samples): peak RSS {rss[times]} MiB")
    print(f"  ratio 10x/1x {rss[10] / rss[1]:.2f} (flat = ~1.0)")
    if "--no-trl" not in sys.argv:
        peer()


def peer() -> None:
    from train_trl import SAMPLES, THREADS, compare

    print(f"== 4. labtax train vs TRL SFTTrainer, SmolLM2-135M, CPU, {THREADS} threads each, {SAMPLES} samples")
    compare()


if __name__ == "__main__":
    main()
