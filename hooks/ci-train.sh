#!/usr/bin/env bash
# The train workflow's main step: labtax train, then labtax eval of the chosen checkpoint against
# the base model, its markdown table appended to the job summary. Exits with eval's code (1 when a
# leaf regressed), after the table is written.
# Before the eval table the summary gets each phase's loss curve (OUTPUT/<phase>/loss.md, a chart
# GitHub renders; loss.png itself is in the uploaded checkpoints artifact).
# Inputs (environment):
#   LABTAX_DATA        folder with phase1_knowledge.jsonl, phase2_skills.jsonl, test.jsonl
#   LABTAX_MODEL       base model: embedded | tiny | a local Hugging Face directory
#   LABTAX_OUTPUT      training output folder (checkpoints per phase under it)
#   LABTAX_PHASE       knowledge | skills | all (default all)
#   LABTAX_TRAIN_ARGS  extra `labtax train` arguments (e.g. --max-steps 100 --nproc-per-node 8)
#   LABTAX_EVAL_BASE   model eval compares against (default: LABTAX_MODEL)
#   LABTAX_EVAL_ARGS   extra `labtax eval` arguments
#   LABTAX             the labtax program (default: labtax on PATH)
# Outputs (to $GITHUB_OUTPUT when set): checkpoint=<path of the chosen checkpoint>, eval-exit-code=N
set -euo pipefail

data=${LABTAX_DATA:?LABTAX_DATA is required}
model=${LABTAX_MODEL:?LABTAX_MODEL is required}
out=${LABTAX_OUTPUT:?LABTAX_OUTPUT is required}
phase=${LABTAX_PHASE:-all}
read -r -a labtax <<<"${LABTAX:-labtax}"
read -r -a train_args <<<"${LABTAX_TRAIN_ARGS:-}"
read -r -a eval_args <<<"${LABTAX_EVAL_ARGS:-}"
output() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s\n' "$1" >>"$GITHUB_OUTPUT"; fi; }

"${labtax[@]}" train --data "$data" --model "$model" --output "$out" --phase "$phase" "${train_args[@]}"

# The checkpoint the last phase selected (OUTPUT/<phase>/result.json, written by labtax train).
last=skills
[ "$phase" = knowledge ] && last=knowledge
checkpoint=$(python3 - "$out/$last/result.json" <<'PY'
import json, sys
print(json.load(open(sys.argv[1], encoding="utf-8"))["selected"]["path"])
PY
)
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
"${labtax[@]}" eval --base "${LABTAX_EVAL_BASE:-$model}" --candidate "$checkpoint" --data "$data" \
  --format markdown "${eval_args[@]}" >"$report" || rc=$?
cat "$report"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo "## labtax eval: $checkpoint vs ${LABTAX_EVAL_BASE:-$model}"; echo; cat "$report"; } >>"$GITHUB_STEP_SUMMARY"
fi
# The checkpoint's model card gets the eval table too, so a shared checkpoint carries its results.
if [ -f "$checkpoint/README.md" ] && [ -s "$report" ]; then
  { echo; echo "## labtax eval against ${LABTAX_EVAL_BASE:-$model}"; echo; cat "$report"; } >>"$checkpoint/README.md"
fi
output "eval-exit-code=$rc"
exit "$rc"
