#!/usr/bin/env bash
# The train workflow's main step: labtax train, then labtax eval of the chosen checkpoint against
# the base model, its markdown table appended to the job summary. Exits with eval's code (1 when a
# leaf regressed), after the table is written.
# Before the eval table the summary gets each phase's loss curve (OUTPUT/<phase>/loss.md, a chart
# GitHub renders; loss.png itself is in the uploaded checkpoints artifact).
# Run it in the taxonomy's checkout: labtax train reads the `train:` section of its .labtax.yaml;
# LABTAX_MODEL and LABTAX_PHASE, when set, override that (as flags do), and when empty the file's
# setting (else labtax's default) applies.
# Inputs (environment):
#   LABTAX_DATA        folder with the sets and manifest.json (every set the manifest lists:
#                      phase1_knowledge*.jsonl, phase2_skills.jsonl, test.jsonl, validation.jsonl)
#   LABTAX_MODEL       base model: embedded | tiny | a local Hugging Face directory ("": .labtax.yaml)
#   LABTAX_OUTPUT      training output folder (checkpoints per phase under it)
#   LABTAX_PHASE       knowledge | skills | all ("": .labtax.yaml, else all)
#   LABTAX_TRAIN_ARGS  extra `labtax train` arguments (e.g. --max-steps 100 --nproc-per-node 8)
#   LABTAX_EVAL_BASE   model eval compares against (default: the base model train started from)
#   LABTAX_EVAL_ARGS   extra `labtax eval` arguments
#   LABTAX             the labtax program (default: labtax on PATH)
# Outputs (to $GITHUB_OUTPUT when set): checkpoint=<path of the chosen checkpoint>, eval-exit-code=N
set -euo pipefail
# No Python start here imports from the working directory (a pull request's checkout: its committed
# labtax/, json.py or pip/ would run as code): PYTHONSAFEPATH for python >= 3.11 and every child
# (torchrun workers, LABTAX="python -m labtax"), and -I or a neutral directory for the starts
# written here, which also holds on 3.10.
export PYTHONSAFEPATH=1

data=${LABTAX_DATA:?LABTAX_DATA is required}
out=${LABTAX_OUTPUT:?LABTAX_OUTPUT is required}
read -r -a labtax <<<"${LABTAX:-labtax}"
read -r -a train_args <<<"${LABTAX_TRAIN_ARGS:-}"
read -r -a eval_args <<<"${LABTAX_EVAL_ARGS:-}"
output() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s\n' "$1" >>"$GITHUB_OUTPUT"; fi; }

args=(train --data "$data" --output "$out")
if [ -n "${LABTAX_MODEL:-}" ]; then args+=(--model "$LABTAX_MODEL"); fi
if [ -n "${LABTAX_PHASE:-}" ]; then args+=(--phase "$LABTAX_PHASE"); fi
"${labtax[@]}" "${args[@]}" "${train_args[@]}"

# What train chose and started from (OUTPUT/summary.json, written by labtax train): the last trained
# phase's selected checkpoint, and the first phase's start, the base model, whichever of a flag,
# .labtax.yaml or the default named it.
{ read -r checkpoint; read -r base; } < <(python3 -I - "$out/summary.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1], encoding="utf-8"))
print(summary["final"])
print(next(iter(summary["phases"].values()))["start"])
PY
)
base=${LABTAX_EVAL_BASE:-${LABTAX_MODEL:-$base}}
echo "chosen checkpoint: $checkpoint"
output "checkpoint=$checkpoint"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  for curve in "$out"/knowledge/loss.md "$out"/skills/loss.md; do
    if [ -f "$curve" ]; then
      { cat "$curve"; echo "(\`$(dirname "$curve")/loss.png\` in the checkpoints artifact)"; echo; } >>"$GITHUB_STEP_SUMMARY"
    fi
  done
fi

report="$out/eval.md"
rc=0
"${labtax[@]}" eval --base "$base" --candidate "$checkpoint" --data "$data" \
  --format markdown "${eval_args[@]}" >"$report" || rc=$?
cat "$report"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo "## labtax eval: $checkpoint vs $base"; echo; cat "$report"; } >>"$GITHUB_STEP_SUMMARY"
fi
# The checkpoint's model card is not touched here: labtax eval records its per-leaf results there
# itself (model-index metadata and a table), and a second copy from this script would repeat them.
output "eval-exit-code=$rc"
exit "$rc"
